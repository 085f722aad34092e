"""A stand-in for on-prem Exchange that real WinRM and MRSProxy clients talk to.

    stand_in = OnpremStandIn(OnpremConfig(...))
    stand_in.start()      # WinRM on http_port (NTLM + sealing) and https_port (Basic/NTLM)
    ...                   # pywinrm runs the product's templates; AD writes land in Samba
    stand_in.stop()

or `python -m lab.onprem --config FILE` (serves until SIGTERM).

It runs only the product's PowerShell templates, recognised by their
`# homebound-op:` header, and answers them from Python. Modules, outside in:
server (HTTP, auth, control API), ntlm (handshake and sealing), wsman
(SOAP), shell (WinRS shells and commands), powershell (command lines,
CLIXML), dispatch (header -> operation, script log), org_ops and
recipients (the operations), org (the persisted organisation), ad (Samba
over LDAPS), mrsproxy, control (fault and latency injection), users,
backend, config.
"""

from lab.onprem.config import OnpremConfig
from lab.onprem.server import OnpremStandIn

__all__ = ["OnpremConfig", "OnpremStandIn"]
