"""A stand-in for on-prem Exchange that real WinRM and MRSProxy clients talk to.

    stand_in = OnpremStandIn(OnpremConfig(...))
    stand_in.start()      # WinRM on http_port (NTLM + sealing) and https_port (Basic/NTLM)
    ...                   # pywinrm runs the product's templates; AD writes land in Samba
    stand_in.stop()

It runs only the product's PowerShell templates, recognised by their
`# homebound-op:` header, and answers them from Python (see dispatch.py);
modules: wsman (SOAP), ntlm (auth and sealing), shell (WinRS), powershell
(command lines, CLIXML), org/org_ops (the organisation), ad/recipients
(Active Directory), mrsproxy, control (fault injection), server (HTTP).
"""

from lab.onprem.config import OnpremConfig
from lab.onprem.server import OnpremStandIn

__all__ = ["OnpremConfig", "OnpremStandIn"]
