from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.certs import LabCertificates, ensure_certificates
from lab.onprem import OnpremConfig, OnpremStandIn
from lab.samba import SambaDC

# ---------------------------------------------------------------------- on-prem Exchange stand-in
# (added for the exchange-configurator and the shell client's tests)

ONPREM_USER = "LAB\\hbadmin"


@dataclass
class OnpremLab:
    """A running on-prem Exchange stand-in (templates_dir set: only byte-identical templates run)."""

    stand_in: OnpremStandIn
    certs: LabCertificates
    password: str

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.stand_in.http_port}/wsman"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.stand_in.https_port}/wsman"

    def section(self, **overrides: Any) -> dict[str, Any]:
        """An [onprem_exchange] section: NTLM over HTTP unless overridden."""
        return {"url": self.http_url, "auth": "ntlm", "username": ONPREM_USER, "password": self.password,
                "ca_file": str(self.certs.ca_file), "mrsproxy_host": "ex01.lab.example",
                "target_delivery_domain": "fabrikam.example", **overrides}

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """The stand-in's loopback control API (/lab/...), over TLS with the lab CA."""
        context = ssl.create_default_context(cafile=str(self.certs.ca_file))
        with httpx.Client(verify=context, trust_env=False, timeout=30) as client:
            response = client.request(method, f"https://127.0.0.1:{self.stand_in.https_port}/lab/{path}",
                                      json=body)
        response.raise_for_status()
        return response.json()

    def scripts(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "scripts"))


def make_onprem_lab_files(base: Path) -> tuple[LabCertificates, Path, str]:
    """The stand-in's TLS certificates and its one account: (certificates, users file, password)."""
    password = f"Pw-{secrets.token_urlsafe(12)}"
    users = base / "users"
    users.write_text(f"LAB:hbadmin:{password}\n")
    users.chmod(0o600)
    return ensure_certificates(base / "tls"), users, password


@pytest.fixture(scope="session")
def onprem_lab_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabCertificates, Path, str]:
    return make_onprem_lab_files(tmp_path_factory.mktemp("onprem-lab"))


def start_onprem(samba: SambaDC, files: tuple[LabCertificates, Path, str], state_dir: Path,
                 **overrides: Any) -> OnpremLab:
    """A fresh stand-in (its own organisation in *state_dir*) on free ports, writing to Samba."""
    import agents.exchange_configurator

    certs, users, password = files
    settings = samba.settings
    config = OnpremConfig(**{
        "http_port": 0, "https_port": 0, "cert_file": certs.cert_file, "key_file": certs.key_file,
        "users_file": users, "state_dir": state_dir,
        "templates_dir": Path(agents.exchange_configurator.__file__).parent / "scripts",
        "ad_ldaps_url": settings.ldaps_url, "ad_bind_user": settings.bind_user,
        "ad_password_file": settings.password_file, "ad_ca_file": settings.ca_file,
        "ad_base_dn": settings.base_dn, **overrides,
    })
    stand_in = OnpremStandIn(config)
    stand_in.start()
    return OnpremLab(stand_in, certs, password)


@pytest.fixture
def onprem(samba: SambaDC, onprem_lab_files: tuple[LabCertificates, Path, str],
           tmp_path: Path) -> Iterator[OnpremLab]:
    lab = start_onprem(samba, onprem_lab_files, tmp_path / "onprem-state")
    yield lab
    lab.stand_in.stop()
