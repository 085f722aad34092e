"""The lab's connection settings as the `homebound.toml` the runtime reads.

The keys are fixed: the runtime's configuration loader is written against
them. Secrets never appear here, only `*_file` keys naming the files that hold
them. The standard library reads TOML but does not write it; the settings are
flat tables of strings, integers and string lists, so a small writer does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabEndpoints", "lab_settings", "render_toml"]

Value = str | int | Sequence[str]
Settings = dict[str, dict[str, Value]]


@dataclass(frozen=True)
class LabEndpoints:
    """Everything about a running lab that ends up in the settings."""

    lab_dir: Path
    tenant_name: str
    tenant_id: str
    client_id: str
    exo_port: int
    winrm_https_port: int
    dns_server: str
    dns_port: int
    tsig_key_name: str
    tsig_algorithm: str
    tsig_secret_file: Path
    ad_url: str
    ad_bind_user: str
    ad_password_file: Path
    ad_base_dn: str
    ad_users_ou: str
    winrm_username: str
    domains: tuple[str, ...]
    gateway_address: str
    target_databases: tuple[str, ...]
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"

    @property
    def gateway_host(self) -> str:
        return f"mail.{self.domains[0]}"


def lab_settings(lab: LabEndpoints) -> Settings:
    """The settings as nested tables, in the order the TOML shows them."""
    d = lab.lab_dir
    ca_file = str(d / "tls" / "ca.pem")
    exo_url = f"https://127.0.0.1:{lab.exo_port}"
    winrm_url = f"https://127.0.0.1:{lab.winrm_https_port}"
    return {
        "amqp": {"url": lab.amqp_url},
        "exchange_online": {
            "tenant": f"{lab.tenant_name}.onmicrosoft.com",
            "tenant_id": lab.tenant_id,
            "client_id": lab.client_id,
            "client_secret_file": str(d / "secrets" / "exo-client-secret"),
            "authority_host": exo_url,
            "api_base_url": exo_url,
            "ca_file": ca_file,
            "routing_domain": f"{lab.tenant_name}.mail.onmicrosoft.com",
        },
        "active_directory": {
            "url": lab.ad_url,
            "bind_user": lab.ad_bind_user,
            "password_file": str(lab.ad_password_file),
            "ca_file": ca_file,
            "base_dn": lab.ad_base_dn,
            "users_ou": lab.ad_users_ou,
        },
        "onprem_exchange": {
            "url": f"{winrm_url}/wsman",
            "auth": "ntlm",
            "username": lab.winrm_username,
            "password_file": str(d / "secrets" / "winrm-password"),
            "ca_file": ca_file,
            "mrsproxy_host": lab.gateway_host,
            "target_delivery_domain": lab.domains[0],
            "target_databases": list(lab.target_databases),
        },
        "gateway": {"host": lab.gateway_host, "addresses": [lab.gateway_address]},
        "dns": {
            "server": lab.dns_server,
            "port": lab.dns_port,
            "tsig_key_name": lab.tsig_key_name,
            "tsig_algorithm": lab.tsig_algorithm,
            "tsig_secret_file": str(lab.tsig_secret_file),
        },
        "lab": {
            "dir": str(d),
            "exo_control_url": f"{exo_url}/lab",
            "onprem_control_url": f"{winrm_url}/lab",
        },
    }


def render_toml(settings: Mapping[str, Mapping[str, Value]]) -> str:
    """One table per section; JSON string escapes are valid TOML basic-string escapes."""
    blocks = []
    for section, table in settings.items():
        lines = [f"[{section}]"]
        lines += [f"{key} = {_value(value)}" for key, value in table.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _value(value: Value) -> str:
    if isinstance(value, bool):
        raise TypeError("no booleans in the lab settings")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "[" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "]"
