"""The whole world for an end-to-end run: every system the agents touch, started for one test.

Samba is the test session's (one per machine); BIND, the Exchange Online
stand-in and the on-prem Exchange stand-in are started here with a domain of
their own, so the run cannot collide with anything else in the shared
directory. The agents get a `homebound.toml` written like an operator's, with
every secret in a file of its own.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from events.amqp import AmqpSettings
from lab.bind import BindServer
from lab.certs import ensure_certificates
from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn
from lab.onprem.config import OnpremConfig
from lab.onprem.server import OnpremStandIn
from lab.samba import SambaDC
from lab.settings_toml import render_toml

GATEWAY_ADDRESS = "192.0.2.25"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


@dataclass
class World:
    domain: str
    tenant: str
    config_file: Path
    exo: ExoStandIn
    onprem: OnpremStandIn
    bind: BindServer
    samba: SambaDC
    users_ou: str

    @property
    def gateway_host(self) -> str:
        return f"mail.{self.domain}"


def tenant_csv(domain: str, rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out,
        [
            "DisplayName",
            "Alias",
            "PrimarySmtpAddress",
            "RecipientTypeDetails",
            "HasArchive",
            "SizeMB",
            "Fault",
        ],
        lineterminator="\n",
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                "HasArchive": "false",
                "SizeMB": "20",
                "Fault": "",
                "RecipientTypeDetails": "UserMailbox",
                **row,
                "PrimarySmtpAddress": f"{row['Alias']}@{domain}",
            }
        )
    return out.getvalue()


@contextmanager
def world(
    root: Path,
    samba: SambaDC,
    users_ou: str,
    broker: AmqpSettings,
    *,
    seed_rows: list[dict[str, str]],
    domain: str | None = None,
    max_concurrent: int = 20,
) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    domain = domain or f"e2e{tag}.example"
    tenant = f"e2e{tag}"
    certs = ensure_certificates(root / "tls", (f"mail.{domain}",))
    winrm_password = f"Wr-{secrets.token_urlsafe(12)}"
    users_file = _private(
        root / "secrets" / "winrm-users", f"{samba.settings.domain}:hbadmin:{winrm_password}\n"
    )
    templates = Path(str(resources.files("agents.exchange_configurator").joinpath("scripts")))
    onprem = OnpremStandIn(
        OnpremConfig(
            http_port=0,
            https_port=0,
            cert_file=certs.cert_file,
            key_file=certs.key_file,
            users_file=users_file,
            state_dir=root / "onprem",
            templates_dir=templates,
            ad_ldaps_url=samba.settings.ldaps_url,
            ad_bind_user=samba.settings.bind_user,
            ad_password_file=samba.settings.password_file,
            ad_ca_file=samba.settings.ca_file,
            ad_base_dn=samba.settings.base_dn,
        )
    )
    onprem.start()
    client_id = str(uuid.uuid4())
    exo_secret = _private(root / "secrets" / "exo-client-secret", secrets.token_urlsafe(24))
    seed_csv = root / "tenant.csv"
    seed_csv.write_text(tenant_csv(domain, seed_rows))
    exo = ExoStandIn(
        ExoConfig(
            port=0,
            cert_file=certs.cert_file,
            key_file=certs.key_file,
            ca_file=certs.ca_file,
            tenant_name=tenant,
            tenant_id=str(uuid.uuid4()),
            domains=[domain],
            seed_csv=seed_csv,
            seed_mailboxes=0,
            apps=[{"client_id": client_id, "client_secret_file": str(exo_secret), "certificate_file": None}],
            remote_servers={f"mail.{domain}": f"https://127.0.0.1:{onprem.https_port}"},
            move_bytes_per_second=4_000_000_000,
            move_tick_seconds=0.1,
            move_min_seconds=1.0,
            log_requests=False,
        )
    )
    exo.start()
    bind = BindServer(root / "dns", port=free_port(), domains=[domain], gateway_address=GATEWAY_ADDRESS)
    dns = bind.ensure_running()
    settings = {
        "amqp": {"url": broker.url},
        "exchange_online": {
            "tenant": f"{tenant}.onmicrosoft.com",
            "tenant_id": exo.config.tenant_id,
            "client_id": client_id,
            "client_secret_file": str(exo_secret),
            "authority_host": exo.base_url,
            "api_base_url": exo.base_url,
            "ca_file": str(certs.ca_file),
            "routing_domain": f"{tenant}.mail.onmicrosoft.com",
        },
        "active_directory": {
            "url": samba.settings.ldaps_url,
            "bind_user": samba.settings.bind_user,
            "password_file": str(samba.settings.password_file),
            "ca_file": str(samba.settings.ca_file),
            "base_dn": samba.settings.base_dn,
            "users_ou": users_ou,
        },
        "onprem_exchange": {
            "url": f"https://127.0.0.1:{onprem.https_port}/wsman",
            "auth": "ntlm",
            "username": f"{samba.settings.domain}\\hbadmin",
            "password_file": str(_private(root / "secrets" / "winrm-password", winrm_password)),
            "ca_file": str(certs.ca_file),
            "mrsproxy_host": f"mail.{domain}",
            "target_delivery_domain": domain,
            "target_databases": ["DB01", "DB02"],
        },
        "gateway": {"host": f"mail.{domain}", "addresses": [GATEWAY_ADDRESS]},
        "dns": {
            "server": dns.server,
            "port": dns.port,
            "tsig_key_name": dns.key_name,
            "tsig_algorithm": dns.algorithm,
            "tsig_secret_file": str(dns.secret_file),
        },
        "migration": {"max_concurrent_migrations": max_concurrent, "batch_size": 25},
        "runtime": {"state_dir": str(root / "state"), "retry_delays": [1, 3, 10], "log_format": "json"},
    }
    config_file = root / "homebound.toml"
    config_file.write_text(render_toml(settings))
    try:
        yield World(domain, tenant, config_file, exo, onprem, bind, samba, users_ou)
    finally:
        exo.stop()
        onprem.stop()
        bind.stop()
