"""Wiring the ad-provisioner: the only place its real adapter is built."""

from __future__ import annotations

from agents.ad_provisioner.adapters import LdapDirectory, LdapSettings
from agents.ad_provisioner.agent import AdProvisioner, ProvisioningPolicy
from agents.ad_provisioner.batching import LookupBatcher
from agents.ad_provisioner.ports import DirectoryUser, Lookup
from agents.runtime.config import ActiveDirectorySection, ConfigError, HomeboundConfig
from agents.runtime.runner import AgentDefinition
from contracts.events import MailEnableMode, Step
from events.consumer import Route
from events.publisher import Publisher

__all__ = ["build", "directory_from_config"]


def directory_from_config(section: ActiveDirectorySection) -> LdapDirectory:
    """The LDAPS adapter for the [active_directory] section (no connection opened yet)."""
    if section.password is None:
        raise ConfigError({"active_directory": [
            "password: required; set HOMEBOUND_ACTIVE_DIRECTORY_PASSWORD_FILE (or password_file)"]})
    return LdapDirectory(LdapSettings(
        url=section.url, bind_user=section.bind_user, password=section.password.get_secret_value(),
        base_dn=section.base_dn, ca_file=section.ca_file, verify_tls=section.verify_tls,
    ))


def build(config: HomeboundConfig, publisher: Publisher) -> AgentDefinition:
    """Routes for `mailbox.discovered`; look-ups of concurrent workers share one search."""
    section: ActiveDirectorySection = config.require("active_directory", needed_by="ad-provisioner")
    directory = directory_from_config(section)
    # No more handlers than workers run at once: a batch holding one question per
    # worker is complete, and waiting longer would only add latency.
    batcher: LookupBatcher[Lookup, list[DirectoryUser]] = LookupBatcher(
        directory.find_users, max_batch=min(section.lookup_batch_size, config.runtime.workers),
        wait_seconds=section.lookup_wait_ms / 1000)
    mode = config.onprem_exchange.mail_enable_mode if config.onprem_exchange else MailEnableMode.MAIL_USER
    provisioner = AdProvisioner(directory, batcher.ask, ProvisioningPolicy(
        users_ou=section.users_ou, mail_enable_mode=mode, password_length=section.password_length))
    return AgentDefinition(
        routes={"mailbox.discovered": Route(provisioner.on_mailbox_discovered, Step.PROVISION)},
        close=directory.close,
        extra={"directory": directory, "batcher": batcher},
    )
