"""Configuration: `homebound.toml`, environment overrides, secrets from files.

Precedence, lowest first: defaults, the TOML file, `HOMEBOUND_<SECTION>_<KEY>`
environment variables. Secrets (passwords, client secrets, TSIG keys) never
come from the TOML file or the command line: set `HOMEBOUND_<SECTION>_<KEY>`
or, better, `HOMEBOUND_<SECTION>_<KEY>_FILE` naming a file that holds it; a
`<key>_file` entry in the TOML may also point at such a file.

    [active_directory]
    url = "ldaps://dc1.corp.example:636"
    password_file = "/run/secrets/ad-password"     # or HOMEBOUND_ACTIVE_DIRECTORY_PASSWORD_FILE
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from contracts.events import CompletionPolicy, MailEnableMode, MoveMode
from contracts.fields import DomainName

__all__ = [
    "SECRET_KEYS",
    "ConfigError",
    "HomeboundConfig",
    "load_config",
]

ENV_PREFIX = "HOMEBOUND_"
DEFAULT_CONFIG_FILE = "homebound.toml"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` says why, per section, in plain words."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        lines = [f"[{section}] {problem}" for section, items in problems.items() for problem in items]
        super().__init__("the configuration has problems:\n  " + "\n  ".join(lines))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmqpSection(Section):
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    password: SecretStr | None = None  # overrides the URL's password
    ca_file: Path | None = None
    heartbeat: int = Field(default=30, ge=5, le=600)
    management_url: str = "http://127.0.0.1:15672"

    @field_validator("url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value


class ExchangeOnlineSection(Section):
    tenant: Annotated[str, Field(min_length=3, description="e.g. fabrikam.onmicrosoft.com")]
    tenant_id: str | None = None
    client_id: str
    client_secret: SecretStr | None = None
    certificate_file: Path | None = None  # public certificate (PEM) of the app registration
    certificate_key_file: Path | None = None  # its private key (PEM), a secret file
    authority_host: str = "https://login.microsoftonline.com"
    api_base_url: str = "https://outlook.office365.com"
    ca_file: Path | None = None
    verify_tls: bool = True
    routing_domain: DomainName  # <tenant>.mail.onmicrosoft.com
    page_size: int = Field(default=1000, ge=1, le=1000)
    timeout_seconds: float = Field(default=60, gt=0)
    # optional, added by the cloud-exporter: mailbox sizes cost one call per mailbox, so
    # they can be turned off, and are fetched by a few threads (the tenant throttles more)
    include_statistics: bool = True
    statistics_concurrency: int = Field(default=4, ge=1, le=16)

    @field_validator("authority_host", "api_base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (msal and the admin API require TLS)")
        return value.rstrip("/")


class ActiveDirectorySection(Section):
    url: str
    bind_user: str
    password: SecretStr | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    base_dn: str
    users_ou: str
    lookup_batch_size: int = Field(default=50, ge=1, le=500)
    # optional, added by the ad-provisioner: how long a look-up waits for others to share
    # its search (handlers finish their writes one by one, so a few ms catch few others),
    # and the length of the generated passwords (above most domains' minimum)
    lookup_wait_ms: float = Field(default=50.0, ge=0, le=2000)
    password_length: int = Field(default=24, ge=14, le=127)

    @field_validator("url")
    @classmethod
    def _ldaps(cls, value: str) -> str:
        if not value.startswith("ldaps://"):
            raise ValueError("must be an ldaps:// URL: passwords are set over TLS only")
        return value


class OnpremExchangeSection(Section):
    url: str  # https://ex01.corp.example:5986/wsman
    auth: Literal["ntlm", "basic", "kerberos", "credssp"] = "ntlm"
    username: str
    password: SecretStr | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    mrsproxy_host: DomainName
    target_delivery_domain: DomainName
    target_databases: list[str] = []
    target_archive_databases: list[str] = []
    mail_enable_mode: MailEnableMode = MailEnableMode.MAIL_USER
    batch_size: int = Field(default=100, ge=1, le=1000)
    mrsproxy_max_connections: int = Field(default=100, ge=1)
    send_connector_name: str = "Homebound to Exchange Online"
    # the exchange-configurator's WinRM client: open shells kept (two let one batch run while
    # the next fills), how long a batch waits for more mailboxes, and the time limits
    shells: int = Field(default=2, ge=1, le=10)
    batch_wait_seconds: float = Field(default=0.15, ge=0, le=5)
    operation_timeout_seconds: int = Field(default=20, ge=1, le=300)
    command_timeout_seconds: float = Field(default=600, gt=0)

    @field_validator("url")
    @classmethod
    def _wsman(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or not value.rstrip("/").endswith("/wsman"):
            raise ValueError("must be http(s)://<server>:<port>/wsman")
        return value


class GatewaySection(Section):
    host: DomainName  # the on-prem mail gateway: MX target and MRSProxy name
    addresses: Annotated[list[str], Field(min_length=1)]

    @field_validator("addresses")
    @classmethod
    def _ips(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_address(value)
        return values


class DnsSection(Section):
    server: str = "127.0.0.1"
    port: int = Field(default=53, ge=1, le=65535)
    tsig_key_name: str
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224"] = "hmac-sha256"
    tsig_secret: SecretStr | None = None
    cutover_ttl: int = Field(default=300, ge=30)
    restore_ttl: int = Field(default=3600, ge=60)
    verify_resolvers: list[str] = []  # extra servers to check the cutover on (host or host:port)
    timeout_seconds: float = Field(default=5, gt=0)
    verify_timeout_seconds: float = Field(default=120, gt=0)  # how long resolvers may lag after the switch
    autodiscover_target: DomainName | None = None  # default: the gateway host
    cloud_spf_include: str = "spf.protection.outlook.com"  # kept in SPF during the migration; "" for none
    state_file: Path | None = None  # default: <state_dir>/dns-cutover/dns-state.sqlite


class MigrationSection(Section):
    endpoint_name: str = "Homebound on-premises"
    max_concurrent_migrations: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=50, ge=1, le=2000)
    move_mode: MoveMode = MoveMode.BATCH
    completion: CompletionPolicy = CompletionPolicy.AUTO
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    ledger_url: str | None = None  # sqlite:///path or postgresql://...; default in state_dir
    outbound_connector_name: str = "Homebound to on-premises"
    # optional, added by the cloud-exporter: how long Test-MigrationServerAvailability is
    # retried in place while the on-prem agent may still be enabling MRSProxy
    endpoint_test_timeout_seconds: float = Field(default=75, ge=0, le=600)


class RuntimeSection(Section):
    state_dir: Path = Path(".homebound")
    retry_delays: list[float] = [5, 60, 600]
    prefetch: int = Field(default=32, ge=1, le=10_000)
    workers: int = Field(default=8, ge=1, le=256)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    audit_retention: str = "30D"

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, values: list[float]) -> list[float]:
        if not values or any(v <= 0 for v in values):
            raise ValueError("needs at least one delay, each above zero seconds")
        return values


class LabSection(Section):
    dir: Path | None = None
    exo_control_url: str | None = None
    onprem_control_url: str | None = None


class HomeboundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path | None = None
    amqp: AmqpSection = AmqpSection()
    exchange_online: ExchangeOnlineSection | None = None
    active_directory: ActiveDirectorySection | None = None
    onprem_exchange: OnpremExchangeSection | None = None
    gateway: GatewaySection | None = None
    dns: DnsSection | None = None
    migration: MigrationSection = MigrationSection()
    runtime: RuntimeSection = RuntimeSection()
    lab: LabSection | None = None

    def require(self, section: str, *, needed_by: str) -> Any:
        value = getattr(self, section)
        if value is None:
            where = self.source or DEFAULT_CONFIG_FILE
            raise ConfigError({section: [f"missing: {needed_by} needs a [{section}] section in {where}"]})
        return value


SECTIONS: dict[str, type[Section]] = {
    "amqp": AmqpSection, "exchange_online": ExchangeOnlineSection,
    "active_directory": ActiveDirectorySection, "onprem_exchange": OnpremExchangeSection,
    "gateway": GatewaySection, "dns": DnsSection, "migration": MigrationSection,
    "runtime": RuntimeSection, "lab": LabSection,
}
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "amqp": ("password",),
    "exchange_online": ("client_secret",),
    "active_directory": ("password",),
    "onprem_exchange": ("password",),
    "dns": ("tsig_secret",),
}

S = TypeVar("S", bound=Section)


def _read_secret(path: str, what: str, problems: list[str]) -> str | None:
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as exc:
        problems.append(f"{what}: cannot read the secret file {path}: {exc.strerror or exc}")
        return None


def _resolve_secret_files(values: dict[str, Any], section: str, problems: list[str]) -> None:
    """Replace each `<secret>_file` entry by the secret it names."""
    for key in list(values):
        if key.endswith("_file") and key[:-5] in SECRET_KEYS.get(section, ()):
            secret = _read_secret(str(values.pop(key)), key, problems)
            if secret is not None:
                values[key[:-5]] = secret


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """HOMEBOUND_<SECTION>_<KEY>[=value] -> {section: {key: value}}; longest section name wins."""
    found: dict[str, dict[str, str]] = {}
    sections = sorted(SECTIONS, key=len, reverse=True)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == "HOMEBOUND_CONFIG":
            continue
        rest = name[len(ENV_PREFIX):].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                found.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
    return found


def _coerce(model: type[Section], key: str, value: str) -> Any:
    """Environment values are strings; lists and numbers arrive as TOML/JSON-ish text."""
    annotation = model.model_fields[key].annotation if key in model.model_fields else str
    text = str(annotation)
    if "list" in text:
        stripped = value.strip()
        if stripped.startswith("["):
            return tomllib.loads(f"v = {stripped}")["v"]
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def load_config(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> HomeboundConfig:
    """Load and validate; raises ConfigError listing every problem by section."""
    env = os.environ if env is None else env
    explicit = path is not None or "HOMEBOUND_CONFIG" in env
    path = path or Path(env.get("HOMEBOUND_CONFIG", DEFAULT_CONFIG_FILE))
    document: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    if path.exists():
        try:
            document = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError({"file": [f"{path} is not valid TOML: {exc}"]}) from exc
    elif explicit:
        raise ConfigError({"file": [f"{path} does not exist"]})
    for section in document:
        if section not in SECTIONS:
            problems.setdefault(section, []).append(
                f"unknown section (known: {', '.join(sorted(SECTIONS))})")
    overrides = _env_overrides(env)
    built: dict[str, Any] = {}
    for section, model in SECTIONS.items():
        values = dict(document.get(section, {})) if isinstance(document.get(section), dict) else {}
        section_problems = problems.setdefault(section, [])
        for key in SECRET_KEYS.get(section, ()):
            if key in values:
                section_problems.append(
                    f"{key}: secrets do not belong in the configuration file; use {key}_file = \"<path>\" "
                    f"or the environment variable HOMEBOUND_{section.upper()}_{key.upper()}_FILE")
                values.pop(key)
        # Secret files named in the TOML first, then the environment, which wins.
        _resolve_secret_files(values, section, section_problems)
        environment = dict(overrides.get(section, {}))
        _resolve_secret_files(environment, section, section_problems)
        values.update(environment)
        if not values and section not in document and section not in overrides:
            continue
        values = {k: _coerce(model, k, v) if isinstance(v, str) and k in model.model_fields else v
                  for k, v in values.items()}
        try:
            built[section] = model.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(p) for p in error["loc"]) or section
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "missing":
                    message = "required but not set"
                elif error["type"] == "extra_forbidden":
                    message = "unknown key"
                section_problems.append(f"{where}: {message}")
    problems = {section: items for section, items in problems.items() if items}
    if problems:
        raise ConfigError(problems)
    return HomeboundConfig(source=path if path.exists() else None, **built)
