"""Accepted domains and outbound connectors: the cloud half of mail flow during the move."""

from __future__ import annotations

from typing import Any, Final

from lab.exo import errors
from lab.exo.cmdlets.binding import Bound, Kind, Param
from lab.exo.cmdlets.registry import Context, Output, cmdlet, rows_of
from lab.exo.model import AcceptedDomain, OutboundConnector, utcnow

DOMAIN_TYPES: Final = ("Authoritative", "InternalRelay", "ExternalRelay")


def domain_record(d: AcceptedDomain) -> dict[str, Any]:
    return {
        "Identity": d.name,
        "Name": d.name,
        "DomainName": d.domain_name,
        "DomainType": d.domain_type,
        "Default": d.default,
        "InitialDomain": d.initial_domain,
        "MatchSubDomains": False,
        "AddressBookEnabled": d.domain_type == "Authoritative",
        "AuthenticationType": "Managed",
        "IsCoexistenceDomain": d.domain_name.endswith(".mail.onmicrosoft.com"),
        "Guid": d.guid,
        "WhenChanged": d.when_changed,
    }


@cmdlet("Get-AcceptedDomain", "AcceptedDomain", Param("Identity"), Param("ResultSize", Kind.UNLIMITED))
def get_accepted_domain(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        domains = list(ctx.tenant.accepted_domains.values())
        if "Identity" in p:
            wanted = str(p.get("Identity")).strip().lower()
            domains = [d for d in domains if wanted in (d.name.lower(), str(d.guid))]
            if not domains:
                raise errors.not_found(p.get("Identity"))
    return Output(rows=rows_of(domains), render=domain_record, result_size=p.get("ResultSize"))


@cmdlet("Set-AcceptedDomain", "AcceptedDomain",
        Param("Identity", required=True), Param("DomainType", Kind.ENUM, choices=DOMAIN_TYPES),
        Param("MakeDefault", Kind.SWITCH), Param("AddressBookEnabled", Kind.BOOL),
        Param("MatchSubDomains", Kind.BOOL), Param("OutboundOnly", Kind.BOOL),
        Param("SendingFromDomainDisabled", Kind.BOOL), what_if=True)
def set_accepted_domain(ctx: Context, p: Bound) -> Output:
    tenant = ctx.tenant
    with tenant.lock:
        key = str(p.get("Identity")).strip().lower()
        domain = tenant.accepted_domains.get(key)
        if domain is None:
            raise errors.not_found(p.get("Identity"))
        if "DomainType" in p:
            if domain.initial_domain and p.get("DomainType") != "Authoritative":
                raise errors.bad_request(
                    f"The domain type of the initial domain '{domain.name}' can't be changed.")
            domain.domain_type = p.get("DomainType")
        if p.switch("MakeDefault"):
            for other in tenant.accepted_domains.values():
                other.default = other is domain
        domain.when_changed = utcnow()
    return Output()


_CONNECTOR_PARAMS: Final = (
    Param("Enabled", Kind.BOOL), Param("UseMXRecord", Kind.BOOL), Param("Comment"),
    Param("ConnectorType", Kind.ENUM, choices=("OnPremises", "Partner")),
    Param("ConnectorSource", Kind.ENUM, choices=("Default", "Migrated", "HybridWizard", "AdminUI")),
    Param("RecipientDomains", Kind.STRINGS), Param("SmartHosts", Kind.STRINGS),
    Param("TlsDomain"),
    Param("TlsSettings", Kind.ENUM,
          choices=("EncryptionOnly", "CertificateValidation", "DomainValidation")),
    Param("IsTransportRuleScoped", Kind.BOOL), Param("RouteAllMessagesViaOnPremises", Kind.BOOL),
    Param("CloudServicesMailEnabled", Kind.BOOL), Param("AllAcceptedDomains", Kind.BOOL),
    Param("TestMode", Kind.BOOL), Param("SenderRewritingEnabled", Kind.BOOL),
    Param("LinkForModifiedConnector", Kind.GUID),
)
_FIELDS: Final = {
    "Enabled": "enabled", "UseMXRecord": "use_mx_record", "Comment": "comment",
    "ConnectorType": "connector_type", "ConnectorSource": "connector_source",
    "RecipientDomains": "recipient_domains", "SmartHosts": "smart_hosts",
    "TlsDomain": "tls_domain", "TlsSettings": "tls_settings",
    "IsTransportRuleScoped": "is_transport_rule_scoped",
    "RouteAllMessagesViaOnPremises": "route_all_messages_via_on_premises",
    "CloudServicesMailEnabled": "cloud_services_mail_enabled",
    "AllAcceptedDomains": "all_accepted_domains", "TestMode": "test_mode",
}


def connector_record(c: OutboundConnector) -> dict[str, Any]:
    return {
        "Identity": c.name,
        "Name": c.name,
        "Enabled": c.enabled,
        "UseMXRecord": c.use_mx_record,
        "Comment": c.comment,
        "ConnectorType": c.connector_type,
        "ConnectorSource": c.connector_source,
        "RecipientDomains": c.recipient_domains,
        "SmartHosts": c.smart_hosts,
        "TlsDomain": c.tls_domain,
        "TlsSettings": c.tls_settings,
        "IsTransportRuleScoped": c.is_transport_rule_scoped,
        "RouteAllMessagesViaOnPremises": c.route_all_messages_via_on_premises,
        "CloudServicesMailEnabled": c.cloud_services_mail_enabled,
        "AllAcceptedDomains": c.all_accepted_domains,
        "TestMode": c.test_mode,
        "SenderRewritingEnabled": False,
        "IsValidated": False,
        "LastValidationTimestamp": None,
        "Guid": c.guid,
        "WhenCreated": c.when_created,
    }


def _apply(connector: OutboundConnector, p: Bound) -> None:
    for name, attribute in _FIELDS.items():
        if name in p:
            setattr(connector, attribute, p.get(name))
    if not connector.use_mx_record and not connector.smart_hosts:
        raise errors.bad_request(
            "SmartHosts must be specified when UseMXRecord is set to $false.",
            "Microsoft.Exchange.Management.SystemConfigurationTasks.SmartHostsRequiredException")
    if connector.route_all_messages_via_on_premises and connector.connector_type != "OnPremises":
        raise errors.bad_request("RouteAllMessagesViaOnPremises requires ConnectorType "
                                 "OnPremises.")


@cmdlet("Get-OutboundConnector", "OutboundConnector", Param("Identity"),
        Param("IncludeTestModeConnectors", Kind.BOOL), Param("IsTransportRuleScoped", Kind.BOOL))
def get_outbound_connector(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        connectors = list(ctx.tenant.connectors.values())
        if "Identity" in p:
            connector = ctx.tenant.connectors.get(str(p.get("Identity")).strip().lower())
            if connector is None:
                raise errors.not_found(p.get("Identity"))
            connectors = [connector]
    return Output(rows=rows_of(connectors), render=connector_record)


@cmdlet("New-OutboundConnector", "OutboundConnector", Param("Name", required=True),
        *_CONNECTOR_PARAMS, what_if=True)
def new_outbound_connector(ctx: Context, p: Bound) -> Output:
    tenant = ctx.tenant
    name = str(p.get("Name")).strip()
    if not name or len(name) > 64:
        raise errors.parameter_binding("Cannot validate argument on parameter 'Name'. The name "
                                       "must be 1 to 64 characters long.")
    with tenant.lock:
        if name.lower() in tenant.connectors:
            raise errors.already_exists(f"An outbound connector named '{name}' already exists.")
        connector = OutboundConnector(seq=tenant.next_seq(), guid=tenant.new_guid(), name=name)
        _apply(connector, p)
        tenant.connectors[name.lower()] = connector
    return Output(rows=[(connector.seq, connector)], render=connector_record)


@cmdlet("Set-OutboundConnector", "OutboundConnector", Param("Identity", required=True),
        Param("Name"), *_CONNECTOR_PARAMS, what_if=True)
def set_outbound_connector(ctx: Context, p: Bound) -> Output:
    tenant = ctx.tenant
    with tenant.lock:
        connector = tenant.connectors.get(str(p.get("Identity")).strip().lower())
        if connector is None:
            raise errors.not_found(p.get("Identity"))
        before = connector.model_copy()
        try:
            _apply(connector, p)
        except errors.CmdletError:
            for attribute in _FIELDS.values():
                setattr(connector, attribute, getattr(before, attribute))
            raise
        if "Name" in p and p.get("Name").lower() != connector.name.lower():
            if p.get("Name").lower() in tenant.connectors:
                raise errors.already_exists(
                    f"An outbound connector named '{p.get('Name')}' already exists.")
            del tenant.connectors[connector.name.lower()]
            connector.name = p.get("Name")
            tenant.connectors[connector.name.lower()] = connector
    return Output()


@cmdlet("Remove-OutboundConnector", "OutboundConnector", Param("Identity", required=True),
        what_if=True)
def remove_outbound_connector(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        if ctx.tenant.connectors.pop(str(p.get("Identity")).strip().lower(), None) is None:
            raise errors.not_found(p.get("Identity"))
    return Output()
