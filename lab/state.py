"""What a lab directory remembers between `lab up` runs (`<dir>/lab.json`).

Identifiers are generated once and kept, so the settings printed by a second
`lab up` are the ones the first printed; ports are remembered so `lab status`,
`lab seed` and `lab down` find the servers `lab up` started.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lab.files import private_directory, write_private

__all__ = ["DEFAULT_DOMAIN", "LabState", "ensure_secret"]

DEFAULT_DOMAIN = "fabrikam.example"


@dataclass
class LabState:
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    domains: list[str] = field(default_factory=lambda: [DEFAULT_DOMAIN])
    dns_port: int = 5353
    exo_port: int = 8443
    winrm_http_port: int = 5985
    winrm_https_port: int = 5986
    gateway_address: str = "192.0.2.25"
    seed_mailboxes: int = 50
    seed_csv: str | None = None
    seed_random: int = 20_000  # the generator's seed: the same tenant on every fresh start

    @property
    def tenant_name(self) -> str:
        """The tenant's short name, from the primary domain (fabrikam.example -> fabrikam)."""
        return self.domains[0].split(".")[0]

    @property
    def gateway_host(self) -> str:
        return f"mail.{self.domains[0]}"

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _random_secret() -> str:
    return secrets.token_urlsafe(32)


def ensure_secret(path: Path, generate: Callable[[], str] = _random_secret) -> str:
    """Read the secret in *path*, creating it (mode 0600, its directory 0700) the first time."""
    private_directory(path.parent)
    if path.exists():
        return path.read_text().strip()
    value = generate()
    write_private(path, value)  # no newline: a reader that forgets strip() still works
    return value
