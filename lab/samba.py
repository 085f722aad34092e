"""A real Active Directory for the lab: a Samba AD DC on 127.0.0.1.

    dc = SambaDC(Path("lab-dir"))
    dc.ensure_running()          # provision once (about 5 s), start, wait for LDAPS
    dc.settings.ldaps_url        # ldaps://127.0.0.1:636, certificate valid for 127.0.0.1

Provisioning uses an empty configuration file so the host's smb.conf never
leaks in, installs the lab CA's certificate (SAN IP:127.0.0.1) before the first
start, and extends the schema offline with the Exchange attributes Homebound
writes (targetAddress, mailNickname, msExchMailboxGuid,
msExchRecipientTypeDetails).
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError

from lab.certs import ensure_certificates
from lab.files import private_directory, write_private
from lab.process import ManagedProcess

__all__ = ["SambaDC", "SambaNotInstalled", "SambaSettings"]

_INSTALL_HINT = "apt-get install -y samba ldb-tools winbind (Debian's packages)"


class SambaNotInstalled(RuntimeError):
    def __init__(self, missing: str) -> None:
        super().__init__(f"{missing} not found: install Samba with `{_INSTALL_HINT}`")


@dataclass(frozen=True)
class SambaSettings:
    """What a client needs to reach the lab's directory."""

    realm: str
    domain: str
    base_dn: str
    ldaps_url: str
    bind_user: str
    password_file: Path
    ca_file: Path
    users_ou: str

    def password(self) -> str:
        return self.password_file.read_text().strip()


def _base_dn(realm: str) -> str:
    return ",".join(f"DC={part}" for part in realm.lower().split("."))


def _generate_password() -> str:
    # Samba's default policy wants three character classes and seven characters.
    return f"Hb7-{secrets.token_urlsafe(18)}x"


class SambaDC:
    def __init__(
        self, lab_dir: Path, *, realm: str = "LAB.EXAMPLE", domain: str = "LAB",
        host_ip: str = "127.0.0.1", users_ou_name: str = "Migrated Users",
    ) -> None:
        self.lab_dir = lab_dir.resolve()
        self.realm = realm.upper()
        self.domain = domain.upper()
        self.host_ip = host_ip
        self.target_dir = self.lab_dir / "samba"
        self.secrets_dir = self.lab_dir / "secrets"
        self.process = ManagedProcess("samba", self.lab_dir / "run")
        base = _base_dn(self.realm)
        self.settings = SambaSettings(
            realm=self.realm,
            domain=self.domain,
            base_dn=base,
            ldaps_url=f"ldaps://{host_ip}:636",
            bind_user=f"Administrator@{self.realm}",
            password_file=self.secrets_dir / "ad-administrator-password",
            ca_file=self.lab_dir / "tls" / "ca.pem",
            users_ou=f"OU={users_ou_name},{base}",
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def provisioned(self) -> bool:
        return (self.target_dir / "private" / "sam.ldb").exists()

    def ensure_running(self, *, fresh: bool = False, timeout: float = 60.0) -> SambaSettings:
        """Provision if needed, start if not running, wait until LDAPS answers."""
        with self._lock():
            if fresh:
                self.process.stop()
                shutil.rmtree(self.target_dir, ignore_errors=True)
            if not self.provisioned:
                self.provision()
            if self.process.pid() is None:
                self.start()
            self.wait_ready(timeout)
            self._ensure_users_ou()
        return self.settings

    def provision(self) -> None:
        for tool in ("samba-tool", "samba", "ldbmodify"):
            if shutil.which(tool) is None:
                raise SambaNotInstalled(tool)
        shutil.rmtree(self.target_dir, ignore_errors=True)
        self.target_dir.mkdir(parents=True)
        private_directory(self.secrets_dir)
        password = _generate_password()
        write_private(self.settings.password_file, password)
        certs = ensure_certificates(self.lab_dir / "tls")
        empty_conf = self.target_dir / "provision-empty.conf"
        empty_conf.write_text("")
        run = self.target_dir / "run"
        options = {
            "interfaces": self.host_ip,
            "bind interfaces only": "yes",
            "pid directory": str(run),
            "ncalrpc dir": str(run / "ncalrpc"),
            "winbindd socket directory": str(run / "winbindd"),
            "log file": str(self.target_dir / "log.%m"),
            "dsdb:schema update allowed": "true",
            # only what an LDAP client needs: no file sharing, NetBIOS or DNS ports taken
            "server services": "-s3fs -nbt -wrepl -dns -dnsupdate -ntp_signd -kcc -drepl",
            "tls enabled": "yes",
            "tls keyfile": str(certs.key_file),
            "tls certfile": str(certs.cert_file),
            "tls cafile": str(certs.ca_file),
        }
        argv = [
            "samba-tool", "domain", "provision", "-s", str(empty_conf),
            f"--targetdir={self.target_dir}", f"--realm={self.realm}", f"--domain={self.domain}",
            "--server-role=dc", "--dns-backend=SAMBA_INTERNAL", "--host-name=dc1",
            f"--host-ip={self.host_ip}", "--use-rfc2307",
        ] + [f"--option={key}={value}" for key, value in options.items()]
        # The administrator password reaches samba-tool through its environment-free
        # stdin prompt would need a TTY; --adminpass keeps it off logs but not off ps(1)
        # for the few seconds provisioning takes, on a lab box only.
        argv.append(f"--adminpass={password}")
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                "samba-tool domain provision failed: "
                + (done.stderr or done.stdout).replace(password, "***")[-2000:]
            )
        self._extend_schema()

    def _extend_schema(self) -> None:
        """Apply the Exchange attributes, then the class change, as two transactions."""
        template = resources.files("lab.data").joinpath("exchange-schema-min.ldif.in").read_text()
        ldif = template.replace("@BASEDN@", self.settings.base_dn)
        attributes, class_change = ldif.split("dn: CN=Mail-Recipient", 1)
        for part, text in (("attributes", attributes), ("class", "dn: CN=Mail-Recipient" + class_change)):
            path = self.target_dir / f"exchange-schema-{part}.ldif"
            path.write_text(text)
            done = subprocess.run(
                ["ldbmodify", f"--configfile={self.target_dir / 'etc' / 'smb.conf'}",
                 "-H", str(self.target_dir / "private" / "sam.ldb"), str(path)],
                capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"extending the schema ({part}) failed: {done.stderr[-1000:]}")

    def start(self) -> None:
        conf = self.target_dir / "etc" / "smb.conf"
        self.process.start(["samba", "-s", str(conf), "-F", "--debug-stdout", "-M", "single",
                            "--debuglevel=1"])

    def stop(self) -> bool:
        return self.process.stop()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise RuntimeError(f"samba exited during start-up:\n{self.process.tail()}")
            try:
                with self.connect():
                    return
            except (LDAPSocketOpenError, LDAPException, OSError) as exc:
                last = exc
                time.sleep(0.25)
        raise TimeoutError(f"Samba did not answer LDAPS within {timeout:.0f} s: {last}")

    # ------------------------------------------------------------------ clients

    def connect(self) -> ldap3.Connection:
        """A bound LDAPS connection as Administrator, the certificate verified."""
        # A new Server each time: ldap3 remembers refused addresses for a few seconds.
        tls = ldap3.Tls(ca_certs_file=str(self.settings.ca_file), validate=2)  # ssl.CERT_REQUIRED
        server = ldap3.Server(self.host_ip, port=636, use_ssl=True, tls=tls, connect_timeout=3)
        return ldap3.Connection(
            server, user=self.settings.bind_user, password=self.settings.password(),
            auto_bind=True, raise_exceptions=True, receive_timeout=30,
        )

    def _ensure_users_ou(self) -> None:
        with self.connect() as conn:
            ou = self.settings.users_ou
            with suppress(ldap3.core.exceptions.LDAPEntryAlreadyExistsResult):
                conn.add(ou, ["top", "organizationalUnit"])

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise provisioning and start-up between concurrent test processes."""
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lab_dir / ".samba.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
