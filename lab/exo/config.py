"""The Exchange Online stand-in's settings, one JSON file.

Field names are a contract with the lab orchestrator, which writes this file;
optional fields added here always have defaults. Relative paths in the file are
resolved against the file's own directory, so a lab directory can be moved.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AppRegistration", "ExoConfig"]

AppRegistration = dict[str, Any]
"""{"client_id": str, "client_secret_file": str | None, "certificate_file": str | None,
    "roles": list[str] (optional, default ["Exchange.ManageAsApp"])}"""

_PATH_FIELDS = ("cert_file", "key_file", "ca_file", "state_file", "seed_csv")


@dataclass(frozen=True, kw_only=True)
class ExoConfig:
    """Everything `python -m lab.exo` needs; see the module docstring for paths."""

    listen_host: str = "127.0.0.1"
    port: int = 8443  # 0 = pick a free port
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None  # verifies the on-prem stand-in's TLS (MRSProxy)
    state_file: Path | None = None
    tenant_name: str = "fabrikam"
    tenant_id: str = "5b3f6c0e-7f1a-4c2b-9d3e-2a1b0c9d8e7f"
    domains: list[str] = field(default_factory=lambda: ["fabrikam.example"])
    apps: list[AppRegistration] = field(default_factory=list)
    seed_mailboxes: int = 50
    seed_csv: Path | None = None
    seed_random: int = 7
    remote_servers: dict[str, str] = field(default_factory=dict)
    move_bytes_per_second: int = 200_000_000
    move_tick_seconds: float = 0.25
    move_min_seconds: float = 1.0
    throttle_requests_per_second: float = 100
    throttle_burst: int = 200
    max_concurrent_requests: int = 16
    error_rate_503: float = 0.0
    latency_ms: tuple[int, int] = (0, 0)
    # optional additions
    move_complete_seconds: float = 0.5  # how long Completing lasts before MRSProxy `complete`
    move_retry_seconds: float = 2.0  # wait after a transient MRSProxy refusal
    token_lifetime_seconds: int = 3599
    concurrency_limit_status: int = 429  # Exchange has been seen answering 200 too
    max_page_size: int = 1000
    log_requests: bool = True

    def __post_init__(self) -> None:
        # callers may pass str paths and a JSON list for latency: store the declared types
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "latency_ms", tuple(int(v) for v in self.latency_ms))
        uuid.UUID(self.tenant_id)  # raises ValueError when it is not a GUID
        if not self.domains:
            raise ValueError("domains: at least one custom domain is needed")
        low, high = self.latency_ms
        if not 0 <= low <= high:
            raise ValueError("latency_ms must be (min, max) with 0 <= min <= max")

    @property
    def initial_domain(self) -> str:
        return f"{self.tenant_name}.onmicrosoft.com"

    @property
    def routing_domain(self) -> str:
        return f"{self.tenant_name}.mail.onmicrosoft.com"

    @classmethod
    def from_file(cls, path: Path | str) -> ExoConfig:
        path = Path(path)
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}")
        for name in _PATH_FIELDS:
            if raw.get(name) is not None:
                value = Path(raw[name])
                raw[name] = value if value.is_absolute() else (path.parent / value).resolve()
        if "latency_ms" in raw:
            raw["latency_ms"] = tuple(int(v) for v in raw["latency_ms"])
        return cls(**raw)

    def to_file(self, path: Path | str) -> None:
        data = dataclasses.asdict(self)
        for name in _PATH_FIELDS:
            if data[name] is not None:
                data[name] = str(data[name])
        data["latency_ms"] = list(self.latency_ms)
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
