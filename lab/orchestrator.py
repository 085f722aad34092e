"""Bring the whole lab up, say what runs, reseed the tenant, and take it down by PID.

    lab = Lab(Path(".lab"), report=print)
    result = lab.up(UpOptions(mailboxes=50))   # Samba, BIND, both stand-ins; settings
    lab.status()                               # per component: PID, ports, health
    lab.down()                                 # SIGTERM to exactly what `up` started

Everything a component needs is created once in the lab directory and reused,
so `up` twice is harmless and joins servers that are already running (the test
session's Samba, for one: only one Samba can listen on 127.0.0.1).
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import dns.exception
from ldap3.core.exceptions import LDAPException

from lab.bind import BindServer, checked_domain
from lab.certs import LabCertificates, ensure_certificates
from lab.files import write_private
from lab.ports import port_is_free, wait_port_free
from lab.process import ManagedProcess
from lab.samba import SambaDC, SambaSettings
from lab.settings_toml import LabEndpoints, Settings, lab_settings, render_toml
from lab.standin_configs import (
    EXO_SEED_KEYS,
    TARGET_DATABASES,
    LabPaths,
    exo_config_values,
    onprem_config_values,
)
from lab.standins import StandIn, control_request, probe_health, wait_healthy
from lab.state import LabState, ensure_secret

__all__ = ["ComponentStatus", "Lab", "LabError", "UpOptions", "UpResult"]

_SAMBA_PACKAGES = ("samba", "ldb-tools", "winbind")
_BIND_PACKAGES = ("bind9", "bind9-utils")
# the Debian packages that bring each program the lab runs
_REQUIRED_TOOLS = {
    "samba": _SAMBA_PACKAGES, "samba-tool": _SAMBA_PACKAGES, "ldbmodify": _SAMBA_PACKAGES,
    "named": _BIND_PACKAGES, "tsig-keygen": _BIND_PACKAGES, "named-checkconf": _BIND_PACKAGES,
    "named-checkzone": _BIND_PACKAGES,
}
_LDAPS_PORT = 636
_WINRM_USER = "hbadmin"
# what `--fresh` removes: only what `up` creates, never the rest of the directory
_LAB_ENTRIES = ("run", "samba", "bind", "exo", "onprem", "secrets", "tls", "lab.json",
                "homebound.toml", "exo.json", "onprem.json")

Report = Callable[[str], None]


class LabError(RuntimeError):
    """A problem the operator can fix; the CLI prints the message, not a traceback."""


@dataclass(frozen=True)
class UpOptions:
    domains: Sequence[str] | None = None  # the first is the tenant's primary custom domain
    mailboxes: int | None = None
    mailboxes_csv: Path | None = None
    fresh: bool = False
    dns_port: int | None = None
    exo_port: int | None = None
    winrm_http_port: int | None = None
    winrm_https_port: int | None = None


@dataclass
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    ports: list[int]
    health: str  # "ok", "not running", "not in this installation", or what failed

    def as_dict(self) -> dict[str, Any]:
        return {"running": self.running, "pid": self.pid, "ports": self.ports,
                "health": self.health}


@dataclass
class UpResult:
    lab_dir: Path
    settings: Settings
    components: list[ComponentStatus] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The settings plus what a script needs to manage the lab: PIDs, ports, directory."""
        return {
            **self.settings,
            "dir": str(self.lab_dir),
            "pids": {c.name: c.pid for c in self.components},
            "ports": {c.name: c.ports for c in self.components},
            "components": {c.name: c.as_dict() for c in self.components},
        }


class Lab:
    def __init__(self, lab_dir: Path, *, report: Report = lambda _: None) -> None:
        self.paths = LabPaths(lab_dir.resolve())
        self.report = report

    # ------------------------------------------------------------------ commands

    def up(self, options: UpOptions = UpOptions()) -> UpResult:
        """Start (or join) every component, seed the tenant, write and return the settings."""
        _check_installed()
        started = time.monotonic()
        with self._lock():
            if options.fresh:
                self._stop_all()
                self._wipe()
            state = self._apply_options(LabState.load(self.paths.state) or LabState(), options)
            state.save(self.paths.state)

            self.report("certificates")
            certs = ensure_certificates(self.paths.tls, (state.gateway_host,))
            ad = self._start_samba()
            bind = self._bind(state)
            self.report(f"DNS: BIND9 on 127.0.0.1:{state.dns_port}, "
                        f"zones {', '.join(state.domains)}")
            _component("BIND9", bind.ensure_running)
            self._ensure_secrets(ad)
            self._start_stand_ins(state, certs, ad, reseed_asked=(
                options.mailboxes is not None or options.mailboxes_csv is not None))

            settings = lab_settings(self._endpoints(state, bind))
            self.paths.toml.write_text(render_toml(settings))
            self.report(f"lab ready in {time.monotonic() - started:.1f} s: {self.paths.toml}")
            return UpResult(self.paths.dir, settings, self.status())

    def down(self, *, keep_samba: bool = False) -> list[tuple[str, int]]:
        """Stop what `up` started, by PID; the (component, PID) pairs stopped."""
        with self._lock():
            return self._stop_all(keep_samba=keep_samba)

    def status(self) -> list[ComponentStatus]:
        state = LabState.load(self.paths.state) or LabState()
        samba, bind = self._samba(), self._bind(state)
        statuses = [
            _status("samba", samba.process.pid(), [_LDAPS_PORT], lambda: _ldaps_probe(samba)),
            _status("named", bind.process.pid(), [state.dns_port], lambda: _soa_probe(bind)),
        ]
        ca_file = self.paths.tls / "ca.pem"
        for stand_in in self._stand_ins(state):
            pid = stand_in.process.pid()
            if pid is None and not stand_in.available():
                statuses.append(ComponentStatus(stand_in.name, False, None, list(stand_in.ports),
                                                "not in this installation"))
                continue
            statuses.append(_status(stand_in.name, pid, list(stand_in.ports),
                                    partial(probe_health, stand_in.health_url, ca_file)))
        return statuses

    def seed(self, *, mailboxes: int | None = None, mailboxes_csv: Path | None = None) -> Any:
        """Add mailboxes to the running tenant (generated, or the rows of a CSV file)."""
        with self._lock():
            state = LabState.load(self.paths.state)
            if state is None:
                raise LabError(f"no lab in {self.paths.dir}: run `homebound lab up` first")
            exo = self._stand_ins(state)[0]
            if exo.process.pid() is None:
                raise LabError(f"the Exchange Online stand-in is not running in {self.paths.dir}: "
                               "run `homebound lab up` first")
            if mailboxes_csv is not None:
                try:
                    body: dict[str, Any] = {"csv": mailboxes_csv.read_text(encoding="utf-8")}
                except (OSError, UnicodeDecodeError) as exc:
                    raise LabError(f"cannot read {mailboxes_csv}: {exc}") from exc
                self.report(f"adding the mailboxes of {mailboxes_csv} to the tenant")
            else:
                body = {"mailboxes": mailboxes}
                self.report(f"adding {mailboxes} generated mailboxes to the tenant")
            try:
                return control_request(exo, "seed", self.paths.tls / "ca.pem", body)
            except (RuntimeError, OSError) as exc:
                raise LabError(f"the Exchange Online stand-in refused the seed: {exc}") from exc

    # ------------------------------------------------------------------ components

    def _start_samba(self) -> SambaSettings:
        samba = self._samba()
        self.report("Active Directory: Samba AD DC on 127.0.0.1:636")
        if samba.process.pid() is None and not port_is_free("127.0.0.1", _LDAPS_PORT):
            raise LabError(
                "127.0.0.1:636 is already in use, most likely by another lab's Samba (only one "
                "can listen on 127.0.0.1): stop it with `homebound lab down --dir <its dir>`"
            )
        settings: SambaSettings = _component("Samba", samba.ensure_running)
        return settings

    def _start_stand_ins(self, state: LabState, certs: LabCertificates, ad: SambaSettings, *,
                         reseed_asked: bool) -> None:
        exo, onprem = self._stand_ins(state)
        self.paths.exo_dir.mkdir(exist_ok=True)  # where the stand-in saves its tenant on stop
        if reseed_asked and (exo.process.pid() is not None or self.paths.exo_tenant.exists()):
            self.report("the Exchange Online tenant of the earlier run is kept with its "
                        "mailboxes: `lab seed` adds more, `lab up --fresh` starts over")
        launched = [stand_in for stand_in, values, live_keys in (
            # the seed shapes a brand-new tenant only: no restart for it
            (exo, exo_config_values(self.paths, state, certs), EXO_SEED_KEYS),
            (onprem, onprem_config_values(self.paths, state, certs, ad), ()),
        ) if self._launch(stand_in, values, live_keys)]
        if launched:
            self.report("waiting for the stand-ins' health endpoints")
            _component("stand-ins", lambda: wait_healthy(launched, certs.ca_file))

    def _samba(self) -> SambaDC:
        return SambaDC(self.paths.dir)

    def _bind(self, state: LabState) -> BindServer:
        return BindServer(self.paths.dir, port=state.dns_port, domains=state.domains,
                          gateway_address=state.gateway_address)

    def _stand_ins(self, state: LabState) -> tuple[StandIn, StandIn]:
        run = self.paths.run
        exo = StandIn("exo", "lab.exo", "ExoConfig", self.paths.exo_config,
                      f"https://127.0.0.1:{state.exo_port}", (state.exo_port,),
                      ManagedProcess("exo", run))
        onprem = StandIn("onprem", "lab.onprem", "OnpremConfig", self.paths.onprem_config,
                         f"https://127.0.0.1:{state.winrm_https_port}",
                         (state.winrm_http_port, state.winrm_https_port),
                         ManagedProcess("onprem", run))
        return exo, onprem

    def _launch(self, stand_in: StandIn, values: dict[str, Any],
                live_keys: Sequence[str] = ()) -> bool:
        """Start, restart or leave alone; False when the package is not installed.

        A change in *live_keys* alone is written to the file but needs no restart.
        """
        running = stand_in.process.pid() is not None
        if not stand_in.available():
            self.report(f"{stand_in.name}: package {stand_in.package} is not in this "
                        "installation, skipped")
            return False
        if running and stand_in.config_matches(values, [k for k in values if k not in live_keys]):
            if not stand_in.config_matches(values):
                stand_in.write_config(values)
            self.report(f"{stand_in.name}: already running (pid {stand_in.process.pid()})")
            return True
        if running:
            self.report(f"{stand_in.name}: configuration changed, restarting")
            stand_in.stop()
        stand_in.write_config(values)
        pid = _component(stand_in.name, stand_in.start)
        self.report(f"{stand_in.name}: started (pid {pid}) on port(s) "
                    f"{', '.join(map(str, stand_in.ports))}")
        return True

    def _stop_all(self, *, keep_samba: bool = False) -> list[tuple[str, int]]:
        state = LabState.load(self.paths.state) or LabState()
        exo, onprem = self._stand_ins(state)
        bind = self._bind(state)
        stoppable: list[tuple[str, Any]] = [("exo", exo), ("onprem", onprem), ("named", bind)]
        if not keep_samba:
            stoppable.append(("samba", self._samba()))
        stopped = []
        for name, component in stoppable:
            pid = component.process.pid()
            if component.stop() and pid is not None:
                self.report(f"stopped {name} (pid {pid})")
                stopped.append((name, pid))
        if not keep_samba:
            wait_port_free("127.0.0.1", _LDAPS_PORT)
        return stopped

    def _wipe(self) -> None:
        self.report(f"--fresh: removing the previous lab in {self.paths.dir}")
        for name in _LAB_ENTRIES:
            path = self.paths.dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _ensure_secrets(self, ad: SambaSettings) -> None:
        ensure_secret(self.paths.exo_client_secret)
        password = ensure_secret(self.paths.winrm_password, _winrm_password)
        # derived from the password file on every run, so the two never disagree
        write_private(self.paths.winrm_users, f"{ad.domain}:{_WINRM_USER}:{password}\n")

    def _apply_options(self, state: LabState, options: UpOptions) -> LabState:
        if options.domains:
            try:
                state.domains = list(dict.fromkeys(checked_domain(d) for d in options.domains))
            except ValueError as exc:
                raise LabError(str(exc)) from exc
        for name in ("dns_port", "exo_port", "winrm_http_port", "winrm_https_port"):
            value = getattr(options, name)
            if value is not None:
                setattr(state, name, value)
        if options.mailboxes_csv is not None:
            copy = self.paths.exo_dir / "seed.csv"
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(options.mailboxes_csv, copy)
            except OSError as exc:
                raise LabError(f"cannot read {options.mailboxes_csv}: {exc}") from exc
            state.seed_csv, state.seed_mailboxes = str(copy), 0
        elif options.mailboxes is not None:
            state.seed_csv, state.seed_mailboxes = None, options.mailboxes
        return state

    def _endpoints(self, state: LabState, bind: BindServer) -> LabEndpoints:
        ad, dns = self._samba().settings, bind.settings
        return LabEndpoints(
            lab_dir=self.paths.dir, tenant_name=state.tenant_name, tenant_id=state.tenant_id,
            client_id=state.client_id, exo_port=state.exo_port,
            winrm_https_port=state.winrm_https_port, dns_server=dns.server, dns_port=dns.port,
            tsig_key_name=dns.key_name, tsig_algorithm=dns.algorithm,
            tsig_secret_file=dns.secret_file, ad_url=ad.ldaps_url, ad_bind_user=ad.bind_user,
            ad_password_file=ad.password_file, ad_base_dn=ad.base_dn, ad_users_ou=ad.users_ou,
            winrm_username=f"{ad.domain}\\{_WINRM_USER}", domains=tuple(state.domains),
            gateway_address=state.gateway_address, target_databases=TARGET_DATABASES,
        )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up`/`down`/`seed` at a time per lab directory."""
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.dir / ".lab.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------------- helpers

def _check_installed() -> None:
    missing = [tool for tool in _REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        packages = dict.fromkeys(p for tool in missing for p in _REQUIRED_TOOLS[tool])
        raise LabError(f"not installed: {', '.join(missing)}. Install them with "
                       f"`apt-get install -y {' '.join(packages)}` (Debian's packages)")


def _component(name: str, action: Callable[[], Any]) -> Any:
    """Run one start-up step; its failure becomes a LabError naming the component."""
    try:
        return action()
    except LabError:
        raise
    except (RuntimeError, TimeoutError, OSError, ValueError, LDAPException) as exc:
        raise LabError(f"{name} failed to start: {exc}") from exc


def _status(name: str, pid: int | None, ports: list[int],
            probe: Callable[[], str | None]) -> ComponentStatus:
    if pid is None:
        return ComponentStatus(name, False, None, ports, "not running")
    problem = probe()
    return ComponentStatus(name, True, pid, ports, problem or "ok")


def _ldaps_probe(samba: SambaDC) -> str | None:
    try:
        with samba.connect():
            return None
    except (LDAPException, OSError) as exc:
        return f"LDAPS bind failed: {exc.__class__.__name__}"


def _soa_probe(bind: BindServer) -> str | None:
    zone = bind.zones()[0]
    try:
        answer = bind.query(zone, "SOA", timeout=1.0)
    except (dns.exception.DNSException, OSError) as exc:
        return f"SOA {zone}: {exc.__class__.__name__}"
    return None if answer.answer else f"SOA {zone}: no answer"


def _winrm_password() -> str:
    # three character classes, as an Exchange admin account's policy would want
    return f"Hb7-{secrets.token_urlsafe(18)}x"
