"""The cloud half of a wave's preparation: mail flow towards on-prem and the migration endpoint.

Each step reads first and changes only what differs, so running it for every
wave (and again on redelivery) is safe and reports "nothing changed" the
second time. Steps are serialised within the agent: two waves converging the
one outbound connector's domain list at once would otherwise lose a domain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from agents.cloud_exporter.ports import CloudOrganisation, NewMigrationEndpoint, OutboundConnector
from agents.shared.exchange_errors import classify
from contracts.events import WaveCloudReadyData
from events.errors import PermanentError, TransientError

__all__ = ["CloudPreparation", "PreparationSettings"]

log = structlog.get_logger(__name__)

INTERNAL_RELAY: Final = "InternalRelay"
ON_PREMISES: Final = "OnPremises"
FIRST_RETRY_SECONDS: Final = 2.0
LONGEST_RETRY_SECONDS: Final = 15.0


@dataclass(frozen=True)
class PreparationSettings:
    connector_name: str
    gateway_host: str
    endpoint: NewMigrationEndpoint
    endpoint_test_timeout_seconds: float


def _plain(text: str) -> str:
    """A change as the contract carries it (256 characters at most)."""
    return text if len(text) <= 256 else text[:253] + "..."


class CloudPreparation:
    def __init__(self, organisation: CloudOrganisation, settings: PreparationSettings, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._organisation = organisation
        self._settings = settings
        self._sleep = sleep  # handlers run on worker threads: sleeping never blocks the broker
        self._clock = clock
        self._lock = threading.Lock()

    def prepare(self, domains: Sequence[str]) -> WaveCloudReadyData:
        """Make the tenant ready for the wave's moves; what it says is read back, never assumed."""
        wanted = list(dict.fromkeys(d.lower() for d in domains))
        with self._lock:
            changes = self._accepted_domains(wanted)
            changes += self._outbound_connector(wanted)
            changes += self._migration_endpoint()
        for change in changes:
            log.info("cloud.changed", change=change)
        self._test_endpoint()
        name = self._settings.endpoint.name
        endpoint = self._organisation.migration_endpoint(name)
        if endpoint is None:
            raise TransientError(f"the migration endpoint {name!r} disappeared right after its test")
        if not endpoint.max_concurrent_migrations:
            raise PermanentError(
                f"the migration endpoint {name!r} reports no MaxConcurrentMigrations",
                remediation=f"Set-MigrationEndpoint -Identity '{name}' -MaxConcurrentMigrations <n>")
        return WaveCloudReadyData(
            migration_endpoint=endpoint.name,
            max_concurrent_migrations=endpoint.max_concurrent_migrations,
            max_concurrent_incremental_syncs=endpoint.max_concurrent_incremental_syncs or None,
            changes=[_plain(c) for c in changes],
        )

    # ------------------------------------------------------------------ steps

    def _accepted_domains(self, domains: list[str]) -> list[str]:
        """Every wave domain InternalRelay: mail for people not yet moved still reaches them."""
        accepted = {d.domain_name: d for d in self._organisation.accepted_domains()}
        missing = [d for d in domains if d not in accepted]
        if missing:
            raise PermanentError(
                f"{', '.join(missing)}: not an accepted domain in the tenant",
                remediation="only domains the tenant accepts can be offboarded: check the wave's "
                            "domains, or add and verify the domain in Microsoft 365, then replay")
        changes = []
        for name in domains:
            domain = accepted[name]
            if domain.domain_type.lower() != INTERNAL_RELAY.lower():
                self._organisation.set_domain_type(domain.identity, INTERNAL_RELAY)
                changes.append(f"accepted domain {name}: {domain.domain_type or 'unknown'} -> "
                               f"{INTERNAL_RELAY}")
        return changes

    def _outbound_connector(self, domains: list[str]) -> list[str]:
        """An OnPremises connector sending the wave's domains to the gateway (smart host, no MX)."""
        name, gateway = self._settings.connector_name, self._settings.gateway_host.lower()
        current = self._organisation.outbound_connector(name)
        if current is None:
            self._organisation.create_outbound_connector(OutboundConnector(
                name=name, smart_hosts=(gateway,), recipient_domains=tuple(domains)))
            created = self._organisation.outbound_connector(name)
            if created is None:
                raise TransientError(f"the outbound connector {name!r} was not found after its creation")
            if created.recipient_domains and not set(domains) <= _lower(created.recipient_domains):
                return [f"outbound connector {name!r} existed already (made concurrently)",
                        *self._converge_connector(created, domains)]
            return [f"outbound connector {name!r} created: smart host {gateway}, "
                    f"domains {', '.join(domains)}"]
        return self._converge_connector(current, domains)

    def _converge_connector(self, current: OutboundConnector, domains: list[str]) -> list[str]:
        gateway = self._settings.gateway_host.lower()
        have = _lower(current.recipient_domains)
        added = [d for d in domains if d not in have]
        wrong = []
        if current.connector_type != ON_PREMISES:
            wrong.append(f"type {current.connector_type or 'unset'} -> {ON_PREMISES}")
        if gateway not in _lower(current.smart_hosts):
            wrong.append(f"smart hosts {', '.join(current.smart_hosts) or 'none'} -> {gateway}")
        if current.use_mx_record:
            wrong.append("UseMXRecord -> false")
        if not current.enabled:
            wrong.append("enabled")
        if not added and not wrong:
            return []
        self._organisation.update_outbound_connector(OutboundConnector(
            name=current.name,
            smart_hosts=current.smart_hosts if gateway in _lower(current.smart_hosts) else (gateway,),
            recipient_domains=(*current.recipient_domains, *added)))
        after = self._organisation.outbound_connector(current.name)
        if after is None or not set(domains) <= _lower(after.recipient_domains):
            raise TransientError(f"the outbound connector {current.name!r} does not yet list "
                                 f"{', '.join(domains)} after updating it")
        if added:
            wrong.insert(0, f"recipient domains + {', '.join(added)}")
        return [f"outbound connector {current.name!r} updated: {'; '.join(wrong)}"]

    def _migration_endpoint(self) -> list[str]:
        """The endpoint the moves push through. Its limits are the operator's to tune: kept as found."""
        wanted = self._settings.endpoint
        current = self._organisation.migration_endpoint(wanted.name)
        if current is None:
            # without verification: MRSProxy may still be being enabled; the test comes next
            self._organisation.create_migration_endpoint(wanted)
            return [f"migration endpoint {wanted.name!r} created: remote server "
                    f"{wanted.remote_server}, MaxConcurrentMigrations {wanted.max_concurrent_migrations}"]
        if current.remote_server.lower() != wanted.remote_server.lower():
            self._organisation.point_migration_endpoint(wanted)
            return [f"migration endpoint {wanted.name!r}: remote server "
                    f"{current.remote_server or 'unset'} -> {wanted.remote_server}"]
        return []

    def _test_endpoint(self) -> None:
        """Test-MigrationServerAvailability, retried in place while MRSProxy is being enabled on-prem."""
        name = self._settings.endpoint.name
        deadline = self._clock() + self._settings.endpoint_test_timeout_seconds
        delay, attempts = FIRST_RETRY_SECONDS, 0
        while True:
            result = self._organisation.test_migration_endpoint(name)
            attempts += 1
            if result.ok:
                log.info("cloud.endpoint_tested", endpoint=name, attempts=attempts)
                return
            if self._clock() + delay > deadline:
                break
            log.info("cloud.endpoint_test_failed", endpoint=name, attempt=attempts,
                     retry_in_seconds=delay, message=result.message[:300])
            self._sleep(delay)
            delay = min(delay * 2, LONGEST_RETRY_SECONDS)
        verdict = classify(result.message)
        raise TransientError(
            f"Test-MigrationServerAvailability for {name!r} (remote server "
            f"{self._settings.endpoint.remote_server}) failed {attempts} times: {result.message}"[:2000],
            remediation=verdict.remediation, error_type="MigrationServerUnavailable")


def _lower(values: Sequence[str]) -> set[str]:
    return {v.lower() for v in values}
