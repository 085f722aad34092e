"""The accounts the stand-in accepts, read from the users file at every check.

Same file and format as pyspnego's NTLM acceptor (`NTLM_USER_FILE`,
`DOMAIN:user:password` lines), so NTLM and Basic always agree, and a rotated
password takes effect without a restart.
"""

from __future__ import annotations

import hmac
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UserEntry", "check_password", "load_users", "warn_if_readable"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserEntry:
    domain: str
    user: str
    password: str

    @property
    def principal(self) -> str:
        return f"{self.domain}\\{self.user}" if self.domain else self.user


def load_users(path: Path) -> list[UserEntry]:
    entries = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append(UserEntry(*parts))
    return entries


def _split(username: str) -> tuple[str | None, str]:
    """`DOMAIN\\user`, `user@domain` or `user` -> (domain or None, user)."""
    if "\\" in username:
        domain, user = username.split("\\", 1)
        return domain, user
    if "@" in username:
        user, domain = username.rsplit("@", 1)
        return domain.split(".", 1)[0], user
    return None, username


def check_password(path: Path, username: str, password: str) -> str | None:
    """The canonical principal (`DOMAIN\\user`) when the password is right, else None."""
    domain, user = _split(username)
    for entry in load_users(path):
        if entry.user.lower() != user.lower():
            continue
        if domain is not None and entry.domain.lower() != domain.lower():
            continue
        if hmac.compare_digest(entry.password.encode(), password.encode()):
            return entry.principal
    return None


def warn_if_readable(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("users file %s is readable by group or others (mode %o): use 0600",
                    path, stat.S_IMODE(mode))
