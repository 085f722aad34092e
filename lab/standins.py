"""Launch the protocol stand-ins (Exchange Online, on-prem Exchange) and talk to their control API.

Each stand-in is a Python package run as `python -m <package> --config <file>`
and answers `GET /lab/health` over TLS that verifies against the lab CA. The
configuration file is written through the package's own config class when it
can be imported (its `to_file`), so a field renamed there shows up here as an
error instead of a stand-in quietly running on defaults.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import lab
from lab.ports import wait_port_free
from lab.process import ManagedProcess

__all__ = ["StandIn", "control_request", "probe_health", "wait_healthy"]

_REPO_ROOT = Path(lab.__file__).resolve().parent.parent


@dataclass(frozen=True)
class StandIn:
    """One stand-in server of a lab directory."""

    name: str  # also the process name in <dir>/run
    package: str  # "lab.exo"
    config_class: str  # "ExoConfig", in <package>.config
    config_file: Path
    base_url: str  # https://127.0.0.1:<port>, where /lab/... lives
    ports: tuple[int, ...]
    process: ManagedProcess

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/lab/health"

    def available(self) -> bool:
        """True when the package is in this installation (`python -m` would find it)."""
        try:
            return importlib.util.find_spec(f"{self.package}.__main__") is not None
        except ModuleNotFoundError:
            return False

    def config_matches(self, values: Mapping[str, Any], keys: Sequence[str] | None = None) -> bool:
        """Whether the file on disk already holds *values* (all of them, or only *keys*)."""
        try:
            current = json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return False
        wanted = json.loads(json.dumps(values, default=str))
        return all(current.get(k) == wanted[k] for k in (keys or wanted))

    def write_config(self, values: Mapping[str, Any]) -> None:
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        config_type = _config_type(self.package, self.config_class)
        if config_type is not None and hasattr(config_type, "to_file"):
            config_type(**values).to_file(self.config_file)
        else:
            self.config_file.write_text(json.dumps(values, indent=2, default=str) + "\n")

    def start(self) -> int:
        for port in self.ports:
            if not wait_port_free("127.0.0.1", port, timeout=3.0):
                raise RuntimeError(
                    f"port {port} on 127.0.0.1 is already in use: the {self.name} stand-in "
                    "cannot listen there (stop what holds it or choose another port)"
                )
        env = dict(os.environ)
        # a checkout that is not installed still finds lab.* in the child
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        return self.process.start(
            [sys.executable, "-m", self.package, "--config", str(self.config_file)],
            env=env, cwd=self.config_file.parent,
        )

    def stop(self) -> bool:
        stopped = self.process.stop()
        if stopped:
            for port in self.ports:
                wait_port_free("127.0.0.1", port)
        return stopped


def _config_type(package: str, name: str) -> Any:
    try:
        module = importlib.import_module(f"{package}.config")
    except ModuleNotFoundError:
        return None
    return getattr(module, name, None)


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """Verification against the lab CA only (REQUESTS_CA_BUNDLE and friends play no part)."""
    return ssl.create_default_context(cafile=str(ca_file))


def probe_health(url: str, ca_file: Path, *, timeout: float = 2.0) -> str | None:
    """None when *url* answers 200 over verified TLS, else what went wrong."""
    try:
        response = httpx.get(url, verify=tls_context(ca_file), timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    return None


def wait_healthy(stand_ins: Sequence[StandIn], ca_file: Path, timeout: float = 30.0) -> None:
    """Wait for every stand-in's health endpoint; a dead or silent one fails with its log."""
    deadline = time.monotonic() + timeout
    waiting = list(stand_ins)
    while waiting:
        current = waiting[0]
        if current.process.exited_early():
            raise RuntimeError(
                f"the {current.name} stand-in exited during start-up; its log ends with:\n"
                f"{current.process.tail()}"
            )
        problem = probe_health(current.health_url, ca_file, timeout=1.0)
        if problem is None:
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the {current.name} stand-in did not answer {current.health_url} within "
                f"{timeout:.0f} s ({problem}); its log ends with:\n{current.process.tail()}"
            )
        time.sleep(0.1)


def control_request(
    stand_in: StandIn, path: str, ca_file: Path, body: Mapping[str, Any], *, timeout: float = 60.0,
) -> Any:
    """POST to the stand-in's control API (`/lab/<path>`); the JSON reply, or an error."""
    url = f"{stand_in.base_url}/lab/{path}"
    response = httpx.post(url, json=dict(body), verify=tls_context(ca_file), timeout=timeout,
                          trust_env=False)
    if response.status_code >= 400:
        raise RuntimeError(f"{url} answered HTTP {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None
