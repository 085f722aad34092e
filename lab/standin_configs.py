"""The configuration of the two stand-ins, derived from the lab directory and its state.

Field names follow `lab.exo.config.ExoConfig` and `lab.onprem.config.OnpremConfig`
exactly. Only the wiring is set here (ports, files, names, the tenant's seed);
move speed, throttling, latency and fault rates keep the stand-ins' own
defaults, which their authors tune. Secrets are passed as file names only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from lab.certs import LabCertificates
from lab.samba import SambaSettings
from lab.state import LabState

__all__ = [
    "EXO_SEED_KEYS", "LabPaths", "exo_config_values", "onprem_config_values", "templates_dir",
]

# How a brand-new tenant is seeded; a running or saved tenant keeps its mailboxes.
EXO_SEED_KEYS = ("seed_mailboxes", "seed_csv", "seed_random")
# The mounted databases of the on-prem stand-in's default organisation (DB01 on EX01,
# DB02 on EX02; its DB03 is dismounted), offered to the product as move targets.
TARGET_DATABASES = ("DB01", "DB02")


class LabPaths:
    """Where each file of a lab directory lives."""

    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        self.run = lab_dir / "run"
        self.tls = lab_dir / "tls"
        self.secrets = lab_dir / "secrets"
        self.state = lab_dir / "lab.json"
        self.toml = lab_dir / "homebound.toml"
        self.exo_config = lab_dir / "exo.json"
        self.onprem_config = lab_dir / "onprem.json"
        self.exo_dir = lab_dir / "exo"
        self.exo_tenant = self.exo_dir / "tenant.json"  # the stand-in saves its tenant here
        self.onprem_dir = lab_dir / "onprem"
        self.exo_client_secret = self.secrets / "exo-client-secret"
        self.winrm_password = self.secrets / "winrm-password"
        self.winrm_users = self.secrets / "winrm-users"


def templates_dir() -> str | None:
    """The product's PowerShell templates, when the exchange-configurator package is installed."""
    try:
        scripts = resources.files("agents.exchange_configurator").joinpath("scripts")
    except ModuleNotFoundError:
        return None
    return str(scripts) if scripts.is_dir() else None


def exo_config_values(paths: LabPaths, state: LabState, certs: LabCertificates) -> dict[str, Any]:
    return {
        "listen_host": "127.0.0.1",
        "port": state.exo_port,
        "cert_file": str(certs.cert_file),
        "key_file": str(certs.key_file),
        "ca_file": str(certs.ca_file),
        "state_file": str(paths.exo_tenant),
        "tenant_name": state.tenant_name,
        "tenant_id": state.tenant_id,
        "domains": list(state.domains),
        "apps": [{
            "client_id": state.client_id,
            "client_secret_file": str(paths.exo_client_secret),
            "certificate_file": None,
        }],
        "seed_mailboxes": state.seed_mailboxes,
        "seed_csv": state.seed_csv,
        "seed_random": state.seed_random,
        "remote_servers": {state.gateway_host: f"https://127.0.0.1:{state.winrm_https_port}"},
    }


def onprem_config_values(
    paths: LabPaths, state: LabState, certs: LabCertificates, ad: SambaSettings,
) -> dict[str, Any]:
    return {
        "listen_host": "127.0.0.1",
        "http_port": state.winrm_http_port,
        "https_port": state.winrm_https_port,
        "cert_file": str(certs.cert_file),
        "key_file": str(certs.key_file),
        "users_file": str(paths.winrm_users),
        "state_dir": str(paths.onprem_dir),
        "templates_dir": templates_dir(),
        "ad_ldaps_url": ad.ldaps_url,
        "ad_bind_user": ad.bind_user,
        "ad_password_file": str(ad.password_file),
        "ad_ca_file": str(ad.ca_file),
        "ad_base_dn": ad.base_dn,
        "organization": state.tenant_name.capitalize(),
    }
