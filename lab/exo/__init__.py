"""Exchange Online stand-in: Azure AD tokens, the admin API (InvokeCommand) and mailbox moves.

Real msal and httpx talk to it over HTTPS exactly as to Microsoft's endpoints;
moves are pushed to the on-prem stand-in's MRSProxy (`lab.mrsproxy_protocol`).
Run it with ``python -m lab.exo --config FILE`` or, in tests, ``ExoStandIn(config)``.
"""

from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn

__all__ = ["ExoConfig", "ExoStandIn"]
