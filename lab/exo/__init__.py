"""Exchange Online stand-in: Azure AD tokens, the admin API (InvokeCommand) and mailbox moves.

Real msal and httpx talk to it over HTTPS exactly as to Microsoft's endpoints;
moves are pushed to the on-prem stand-in's MRSProxy (`lab.mrsproxy_protocol`).
Run it with ``python -m lab.exo --config FILE`` or, in tests, ``ExoStandIn(config)``.

Modules, outside in:

* ``server``: HTTPS server, routing, request log, `ExoStandIn`; ``__main__``: the CLI.
* ``tokens``: OpenID discovery, client-credential tokens (secret or certificate).
* ``adminapi``: InvokeCommand: auth, throttling, paging, ``$select``, typed values
  (``odata``), Exchange's error bodies (``errors``); ``throttle``: the limits.
* ``cmdlets/``: one module per area (``recipients``, ``organization``, ``endpoints``,
  ``batches``, ``move_requests``), parameter binding (``binding``); ``opath``: -Filter.
* ``tenant`` and ``model``: the state, its lookups and the state file; ``seed``: who
  lives in the tenant; ``sizes``: "1.2 GB (1,288,490,188 bytes)".
* ``moves``: the move simulator, calling MRSProxy through ``mrsproxy_client``;
  ``statuses``: Exchange's status names; ``faults``: injected failures.
* ``control``: ``/lab/...`` for tests and the demo.
"""

from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn

__all__ = ["ExoConfig", "ExoStandIn"]
