"""What the operations share: configuration, organisation model, directory, lab controls.

`ExchangeError` is how an operation reports what an Exchange cmdlet would
throw: the exception's class name and its message, the same pair the
templates put in their results (`$_.Exception.GetType().Name`, `.Message`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from contracts.onprem import ShellError
from lab.onprem.ad import Directory
from lab.onprem.config import OnpremConfig
from lab.onprem.control import LabControl
from lab.onprem.org import OrgModel, domain_of_base_dn

__all__ = ["Backend", "ExchangeError"]


class ExchangeError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def as_shell_error(self) -> ShellError:
        return ShellError(type=self.error_type, message=self.message[:4000])


@dataclass
class Backend:
    config: OnpremConfig
    org: OrgModel
    directory: Directory
    control: LabControl
    # Exchange checks proxy uniqueness and writes in one step; concurrent scripts must not interleave.
    recipient_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def domain_controller(self) -> str:
        """The DC name Exchange cites in "couldn't be found on '…'" messages."""
        host = urlsplit(self.config.ad_ldaps_url).hostname or "localhost"
        if host.replace(".", "").isdigit():
            return f"dc1.{domain_of_base_dn(self.config.ad_base_dn)}"
        return host

    def not_found(self, identity: object) -> ExchangeError:
        return ExchangeError(
            "ManagementObjectNotFoundException",
            f"The operation couldn't be performed because object '{identity}' couldn't be found "
            f"on '{self.domain_controller}'.",
        )
