"""What the on-prem organisation still lacks for a wave, from one org-inspect.

Pure functions over `OrgInspectResponse`, so the same plan serves the
handler (prepare, then inspect again and check nothing is left) and the
pre-flight of `homebound migrate --dry-run` (print what would change).

EXCHANGE.md, steps 1 and 6 and pre-flight checks 3, 4 and 8: each wave domain
an accepted domain of type InternalRelay; a send connector whose address
space covers the tenant's routing domain; MRSProxy enabled on every EWS
virtual directory; the target databases mounted; recipient validation on
(otherwise only a warning: it protects against mail loops, the move works
without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.onprem import (
    AcceptedDomainChange,
    DomainType,
    OrgInspectResponse,
    OrgPrepareRequest,
    SendConnector,
    SendConnectorChange,
)

__all__ = ["OrgTarget", "describe", "is_empty", "plan", "ready_facts", "unknown_databases", "warnings"]


@dataclass(frozen=True)
class OrgTarget:
    """What one wave needs from the organisation."""

    domains: tuple[str, ...]
    routing_domain: str  # <tenant>.mail.onmicrosoft.com
    send_connector_name: str
    databases: tuple[str, ...]  # primary and archive target databases; empty: any
    target_delivery_domain: str | None = None

    @property
    def address_space(self) -> str:
        return f"SMTP:{self.routing_domain};1"


def _address_space_domain(space: str) -> str:
    """`SMTP:contoso.mail.onmicrosoft.com;1` -> `contoso.mail.onmicrosoft.com`."""
    text = space.strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    return text.split(";", 1)[0].strip().lower()


def _covers(connector: SendConnector, domain: str) -> bool:
    """True when the enabled connector routes *domain* by name (exactly or by `*.parent`).

    A bare `*` (the internet connector) does not count: the procedure wants an
    explicit route to the tenant, not whatever MX lookup the internet path does.
    """
    if not connector.enabled:
        return False
    domain = domain.lower()
    for space in connector.address_spaces:
        pattern = _address_space_domain(space)
        if pattern == domain or (pattern.startswith("*.") and domain.endswith(pattern[1:])):
            return True
    return False


def unknown_databases(org: OrgInspectResponse, target: OrgTarget) -> list[str]:
    known = {d.name.lower() for d in org.mailbox_databases}
    return [name for name in target.databases if name.lower() not in known]


def plan(org: OrgInspectResponse, target: OrgTarget) -> OrgPrepareRequest:
    """Only what is missing; an empty request means the organisation is ready."""
    existing = {d.domain_name.lower(): d for d in org.accepted_domains}
    domains = [
        AcceptedDomainChange(domain_name=name, domain_type=DomainType.INTERNAL_RELAY)
        for name in dict.fromkeys(d.lower() for d in target.domains)
        if name not in existing or existing[name].domain_type is not DomainType.INTERNAL_RELAY
    ]
    connectors = [] if any(_covers(c, target.routing_domain) for c in org.send_connectors) else [
        SendConnectorChange(name=target.send_connector_name, address_spaces=[target.address_space])]
    mounted = {d.name.lower() for d in org.mailbox_databases if d.mounted}
    return OrgPrepareRequest(
        accepted_domains=domains,
        send_connectors=connectors,
        enable_mrsproxy=[v.identity for v in org.ews_virtual_directories if not v.mrsproxy_enabled],
        mount_databases=[n for n in dict.fromkeys(target.databases) if n.lower() not in mounted],
    )


def describe(request: OrgPrepareRequest) -> list[str]:
    """The plan in an administrator's words (for the dry run, and for what is still missing)."""
    return [
        *(f"accepted domain '{d.domain_name}' as {d.domain_type}" for d in request.accepted_domains),
        *(f"send connector '{c.name}' to {', '.join(c.address_spaces)}" for c in request.send_connectors),
        *(f"MRSProxy on '{v}'" for v in request.enable_mrsproxy),
        *(f"database '{n}' mounted" for n in request.mount_databases),
    ]


def is_empty(request: OrgPrepareRequest) -> bool:
    return not (request.accepted_domains or request.send_connectors or request.enable_mrsproxy
                or request.mount_databases)


def warnings(org: OrgInspectResponse, target: OrgTarget) -> list[str]:
    """Conditions an administrator should fix, that do not stop the move."""
    found: list[str] = []
    if not org.recipient_validation_enabled:
        found.append(
            "recipient validation is off on the gateway (Set-RecipientFilterConfig "
            "-RecipientValidationEnabled $true): with InternalRelay on both sides, mail to an "
            "address that exists on neither side loops until 'Hop count exceeded'")
    accepted = {d.domain_name.lower() for d in org.accepted_domains}
    delivery = target.target_delivery_domain
    if delivery and delivery.lower() not in accepted:
        found.append(f"the target delivery domain '{delivery}' is not an accepted domain on-premises: "
                     "moves will fail until it is")
    return found


def ready_facts(org: OrgInspectResponse, target: OrgTarget,
                configured_max_connections: int) -> tuple[list[str], list[str], int]:
    """(MRSProxy servers, mounted target databases, MaxMRSConnections to plan with)."""
    servers = sorted({v.server for v in org.ews_virtual_directories if v.mrsproxy_enabled})
    wanted = {n.lower() for n in target.databases}
    mounted = [d.name for d in org.mailbox_databases
               if d.mounted and (not wanted or d.name.lower() in wanted)]
    reported = [v.mrsproxy_max_connections for v in org.ews_virtual_directories
                if v.mrsproxy_enabled and v.mrsproxy_max_connections]
    # the smallest server limit wins; the configuration may only lower it
    return servers, mounted, min([*reported, configured_max_connections])

