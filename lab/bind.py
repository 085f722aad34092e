"""A real DNS server for the lab: BIND9 accepting RFC 2136 updates signed with TSIG.

    dns = BindServer(Path("lab-dir"), port=5353, domains=["fabrikam.example"])
    dns.ensure_running()        # key, named.conf, zones; start; wait for a SOA answer
    dns.settings.secret_file    # the TSIG secret (mode 0600), never in a config file

Each zone starts as an Exchange Online customer's zone looks (MX to
`<domain-with-dashes>.mail.protection.outlook.com`, SPF including
`spf.protection.outlook.com`, autodiscover CNAME to `autodiscover.outlook.com`,
TTL 3600) plus an A record for the on-prem gateway, so the DNS cutover agent
has the real starting point to change. Zone files are written once; BIND keeps
dynamic changes in journals beside them, so updates survive a restart and a
later `ensure_running()` serves them again. `fresh=True` starts over.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from lab.files import private_directory, write_private
from lab.ports import port_is_free, wait_port_free
from lab.process import ManagedProcess

__all__ = [
    "BindNotInstalled", "BindServer", "BindSettings", "checked_domain", "exchange_online_mx",
]

INSTALL_HINT = "apt-get install -y bind9 bind9-utils"
_TOOLS = ("named", "tsig-keygen", "named-checkconf", "named-checkzone")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_KEY_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_SECRET = re.compile(r'secret\s+"([A-Za-z0-9+/=]+)"')


class BindNotInstalled(RuntimeError):
    def __init__(self, missing: str) -> None:
        super().__init__(f"{missing} not found: install BIND9 with `{INSTALL_HINT}`")


@dataclass(frozen=True)
class BindSettings:
    """What the DNS cutover agent needs to send signed updates to the lab's DNS."""

    server: str
    port: int
    key_name: str
    algorithm: str
    secret_file: Path
    zones: tuple[str, ...]

    def secret(self) -> str:
        return self.secret_file.read_text().strip()


def exchange_online_mx(domain: str) -> str:
    """The MX host Exchange Online gives a custom domain: dots become dashes."""
    return f"{domain.replace('.', '-')}.mail.protection.outlook.com."


def checked_domain(domain: str) -> str:
    """The domain in canonical form; ValueError unless it is a plain host name.

    The name goes into named.conf, a zone file and a certificate: nothing else may.
    """
    name = domain.strip().rstrip(".").lower()
    if not _DOMAIN.match(name):
        raise ValueError(f"not a DNS domain name: {domain!r}")
    return name


class BindServer:
    def __init__(
        self, lab_dir: Path, *, port: int = 5353, listen: str = "127.0.0.1",
        domains: Iterable[str] = ("fabrikam.example",), gateway_address: str = "192.0.2.25",
        key_name: str = "homebound-key",
    ) -> None:
        self.lab_dir = lab_dir.resolve()
        if '"' in str(self.lab_dir):
            raise ValueError("the lab directory's path must not contain a double quote")
        self.port = port
        self.listen = str(ipaddress.IPv4Address(listen))
        self.gateway_address = str(ipaddress.IPv4Address(gateway_address))
        self.domains = tuple(dict.fromkeys(checked_domain(d) for d in domains))
        if not _KEY_NAME.match(key_name):
            raise ValueError(f"not a TSIG key name: {key_name!r}")
        self.key_name = key_name
        self.bind_dir = self.lab_dir / "bind"
        self.zones_dir = self.bind_dir / "zones"
        self.conf_file = self.bind_dir / "named.conf"
        self.key_file = self.bind_dir / "tsig.key"
        self.secret_file = self.lab_dir / "secrets" / f"tsig-{key_name}"
        self.process = ManagedProcess("named", self.lab_dir / "run")

    @property
    def settings(self) -> BindSettings:
        return BindSettings(
            server=self.listen, port=self.port, key_name=self.key_name,
            algorithm="hmac-sha256", secret_file=self.secret_file, zones=self.zones(),
        )

    def zones(self) -> tuple[str, ...]:
        """Every zone this lab directory serves: those asked for and those created before."""
        existing = sorted(p.name.removesuffix(".zone") for p in self.zones_dir.glob("*.zone"))
        return tuple(dict.fromkeys([*self.domains, *existing]))

    # ------------------------------------------------------------------ lifecycle

    def ensure_running(self, *, fresh: bool = False, timeout: float = 15.0) -> BindSettings:
        """Create what is missing, start named unless it runs, wait until every zone answers."""
        for tool in _TOOLS:
            if shutil.which(tool) is None:
                raise BindNotInstalled(tool)
        with self._lock():
            if fresh:
                self.process.stop()
                shutil.rmtree(self.bind_dir, ignore_errors=True)
                self.secret_file.unlink(missing_ok=True)
            self._ensure_key()
            for domain in self.domains:
                self._ensure_zone(domain)
            previous = self.conf_file.read_text() if self.conf_file.exists() else ""
            self._write_config()
            if self.process.pid() is None:
                self._start()
            elif self.conf_file.read_text() != previous:
                if self._listen_line() in previous:
                    self._reload()
                else:
                    self.stop()
                    self._start()
            self.wait_ready(timeout)
        return self.settings

    def add_zone(self, domain: str, *, timeout: float = 15.0) -> None:
        """Serve one more zone; a running named reloads its configuration (SIGHUP)."""
        name = checked_domain(domain)
        with self._lock():
            self.domains = tuple(dict.fromkeys([*self.domains, name]))
            self._ensure_zone(name)
            self._write_config()
            if self.process.pid() is not None:
                self._reload()
                self.wait_ready(timeout)

    def stop(self) -> bool:
        stopped = self.process.stop()
        if stopped:
            wait_port_free(self.listen, self.port)
        return stopped

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every zone's SOA is answered with authority (named loads zones after binding)."""
        deadline = time.monotonic() + timeout
        waiting = list(self.zones())
        last = "no answer yet"
        while waiting:
            if self.process.exited_early():
                raise RuntimeError(f"named exited during start-up:\n{self.process.tail()}")
            try:
                answer = self.query(waiting[0], "SOA", timeout=0.5)
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    waiting.pop(0)
                    continue
                last = f"{waiting[0]}: {dns.rcode.to_text(answer.rcode())}"
            except (dns.exception.DNSException, OSError) as exc:
                last = f"{waiting[0]}: {exc.__class__.__name__}"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"named did not answer SOA on {self.listen}:{self.port} within "
                    f"{timeout:.0f} s ({last}); log:\n{self.process.tail()}"
                )
            time.sleep(0.05)

    def query(self, name: str, rdtype: str, *, timeout: float = 2.0) -> dns.message.Message:
        """One UDP query to this server (no recursion: it is authoritative only)."""
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        request.flags &= ~dns.flags.RD
        return dns.query.udp(request, self.listen, port=self.port, timeout=timeout)

    # ------------------------------------------------------------------ files

    def _ensure_key(self) -> None:
        """The TSIG secret is made once by tsig-keygen; named's key file is derived from it."""
        private_directory(self.secret_file.parent)
        self.bind_dir.mkdir(parents=True, exist_ok=True)
        if not self.secret_file.exists():
            done = subprocess.run(["tsig-keygen", "-a", "hmac-sha256", self.key_name],
                                  capture_output=True, text=True, check=False)
            found = _SECRET.search(done.stdout)
            if done.returncode != 0 or found is None:
                raise RuntimeError(f"tsig-keygen failed: {done.stderr.strip()[-500:]}")
            write_private(self.secret_file, found.group(1))
        secret = self.secret_file.read_text().strip()
        write_private(self.key_file, (
            f'key "{self.key_name}" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n'
        ))

    def _ensure_zone(self, domain: str) -> None:
        """Write the zone's starting records once; later changes live in named's journal."""
        path = self.zones_dir / f"{domain}.zone"
        if path.exists():
            return
        self.zones_dir.mkdir(parents=True, exist_ok=True)
        serial = int(time.strftime("%Y%m%d")) * 100 + 1
        path.write_text(
            f"$ORIGIN {domain}.\n"
            "$TTL 3600\n"
            f"@\tIN SOA ns1.{domain}. hostmaster.{domain}. "
            f"( {serial} 3600 600 1209600 300 )\n"
            "@\tIN NS ns1\n"
            f"ns1\tIN A {self.listen}\n"
            f"@\tIN MX 0 {exchange_online_mx(domain)}\n"
            '@\tIN TXT "v=spf1 include:spf.protection.outlook.com -all"\n'
            "autodiscover\tIN CNAME autodiscover.outlook.com.\n"
            f"mail\tIN A {self.gateway_address}\n"
        )

    def _listen_line(self) -> str:
        return f"listen-on port {self.port} {{ {self.listen}; }};"

    def _write_config(self) -> None:
        d = self.bind_dir
        zones = "".join(
            f'zone "{zone}" {{\n\ttype primary;\n\tfile "{self.zones_dir / (zone + ".zone")}";\n'
            f'\tallow-update {{ key "{self.key_name}"; }};\n}};\n'
            for zone in self.zones()
        )
        self.conf_file.write_text(
            "// Written by Homebound's lab (lab/bind.py) on every start.\n"
            f'include "{self.key_file}";\n'
            "options {\n"
            f'\tdirectory "{d}";\n'
            f'\tpid-file "{d / "named.pid"}";\n'
            f'\tsession-keyfile "{d / "session.key"}";\n'
            f'\tmanaged-keys-directory "{d}";\n'
            f"\t{self._listen_line()}\n"
            "\tlisten-on-v6 { none; };\n"
            "\trecursion no;\n"
            "\tdnssec-validation no;\n"
            "\tnotify no;\n"
            "};\n"
            "controls { };\n"
            + zones
        )
        # checked before every start and reload: named itself would only log the problem
        _check(["named-checkconf", str(self.conf_file)], "named.conf")
        for zone in self.zones():
            _check(["named-checkzone", zone, str(self.zones_dir / f"{zone}.zone")], f"zone {zone}")

    # ------------------------------------------------------------------ process

    def _start(self) -> None:
        if not port_is_free(self.listen, self.port, udp=True):
            raise RuntimeError(
                f"port {self.port} on {self.listen} is already in use: stop what holds it "
                "or choose another DNS port"
            )
        self.process.start(["named", "-g", "-4", "-c", str(self.conf_file)])

    def _reload(self) -> None:
        pid = self.process.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)  # named rereads named.conf and loads new zones

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise key creation and start-up between processes sharing a lab directory."""
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lab_dir / ".bind.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _check(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} rejected {what}:\n{(done.stdout + done.stderr).strip()}")
