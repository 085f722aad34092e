"""Configuration of the on-prem Exchange stand-in, one JSON file.

The orchestrator writes it (`OnpremConfig.to_file`) and starts
`python -m lab.onprem --config FILE`; tests build it directly. Secrets are
never in it: the users file and the AD password file are named, not inlined.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["OnpremConfig"]

_PATH_FIELDS = frozenset(
    {"cert_file", "key_file", "users_file", "state_dir", "templates_dir", "ad_password_file",
     "ad_ca_file"}
)


def _default_databases() -> list[dict[str, Any]]:
    return [
        {"name": "DB01", "server": "EX01", "mounted": True},
        {"name": "DB02", "server": "EX02", "mounted": True},
        {"name": "DB03", "server": "EX02", "mounted": False},
    ]


@dataclass(frozen=True, kw_only=True)
class OnpremConfig:
    """Where the stand-in listens, whom it lets in, which directory it writes to.

    Ports 0 mean "any free port" (read the real ones from `OnpremStandIn` or
    `<state_dir>/ports.json`). `servers`, `databases` and
    `mrsproxy_max_connections` seed the organisation model on first start
    only: afterwards the persisted model in `state_dir` wins.
    """

    listen_host: str = "127.0.0.1"
    http_port: int = 5985
    https_port: int = 5986
    cert_file: Path  # server certificate chain (PEM)
    key_file: Path
    users_file: Path  # DOMAIN:user:password lines, mode 0600
    state_dir: Path
    templates_dir: Path | None = None  # when set, only byte-identical templates run
    ad_ldaps_url: str
    ad_bind_user: str
    ad_password_file: Path
    ad_ca_file: Path
    ad_base_dn: str
    organization: str = "Fabrikam"
    servers: list[str] = field(default_factory=lambda: ["EX01", "EX02"])
    databases: list[dict[str, Any]] = field(default_factory=_default_databases)
    mrsproxy_max_connections: int = 100
    latency_ms: tuple[int, int] = (0, 0)
    # optional extras (defaults match an Exchange 2019 CU14 server)
    exchange_version: str = "Version 15.2 (Build 1544.4)"
    max_shells_per_user: int = 30  # WinRM MaxShellsPerUser
    max_envelope_size_kb: int = 500  # WinRM MaxEnvelopeSizekb

    def __post_init__(self) -> None:
        # accept JSON-shaped values too (strings for paths, a list for latency_ms)
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "latency_ms", (int(self.latency_ms[0]), int(self.latency_ms[1])))
        low, high = self.latency_ms
        if not 0 <= low <= high:
            raise ValueError(f"latency_ms must be (min, max) with 0 <= min <= max, not {self.latency_ms}")
        unknown = {str(db.get("server")) for db in self.databases} - set(self.servers)
        if unknown:
            raise ValueError(f"databases name servers that are not in servers: {sorted(unknown)}")
        if self.mrsproxy_max_connections < 1:
            raise ValueError("mrsproxy_max_connections must be at least 1")

    @classmethod
    def from_file(cls, path: Path) -> OnpremConfig:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        extra = set(raw) - known
        if extra:
            raise ValueError(f"unknown settings in {path}: {sorted(extra)}")
        return cls(**raw)

    def to_file(self, path: Path) -> None:
        data = asdict(self)
        for key in _PATH_FIELDS:
            if data[key] is not None:
                data[key] = str(data[key])
        data["latency_ms"] = list(self.latency_ms)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
