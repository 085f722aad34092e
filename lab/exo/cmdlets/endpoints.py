"""Migration endpoints and Test-MigrationServerAvailability: how the cloud reaches MRSProxy.

Only ExchangeRemoteMove endpoints exist here. Like Exchange, creating one
checks the connection (MRSProxy `ping`) unless -SkipVerification is given;
the password is stored for the moves and never returned.
"""

from __future__ import annotations

from typing import Any, Final

from lab.exo import errors
from lab.exo.cmdlets.binding import UNLIMITED, Bound, Credential, Kind, Param
from lab.exo.cmdlets.registry import Context, Output, cmdlet, rows_of
from lab.exo.model import MigrationEndpoint
from lab.exo.mrsproxy_client import MrsOutcome
from lab.mrsproxy_protocol import Ping

MIGRATION: Final = "Microsoft.Exchange.Migration"
CONNECTION_FAILED: Final = f"{MIGRATION}.MigrationServerConnectionFailedException"


def endpoint_record(e: MigrationEndpoint) -> dict[str, Any]:
    return {
        "Identity": e.name,
        "Name": e.name,
        "EndpointType": e.endpoint_type,
        "RemoteServer": e.remote_server,
        "Username": e.username,
        "Authentication": "Basic",
        "MaxConcurrentMigrations": e.max_concurrent_migrations,
        "MaxConcurrentIncrementalSyncs": e.max_concurrent_incremental_syncs,
        "IsRemote": True,
        "RemoteTenant": None,
        "Guid": e.guid,
        "LastModifiedTime": e.when_created,
    }


def _ping(ctx: Context, remote_server: str, credential: Credential | None) -> MrsOutcome:
    return ctx.mrs.call(remote_server, credential.username if credential else None,
                        credential.password if credential else None, Ping())


def _connection_failed(remote_server: str, outcome: MrsOutcome) -> str:
    return (f"The connection to the server '{remote_server}' could not be completed. "
            f"{outcome.error_text}")


def _limits(p: Bound, endpoint: MigrationEndpoint) -> None:
    for name, attribute in (("MaxConcurrentMigrations", "max_concurrent_migrations"),
                            ("MaxConcurrentIncrementalSyncs", "max_concurrent_incremental_syncs")):
        if name in p:
            value = p.get(name)
            if value is UNLIMITED or not 1 <= value <= 1000:
                raise errors.parameter_binding(
                    f"Cannot validate argument on parameter '{name}'. The value must be "
                    "between 1 and 1000.")
            setattr(endpoint, attribute, value)


@cmdlet("Get-MigrationEndpoint", "MigrationEndpoint", Param("Identity"), Param("Type"),
        Param("DiagnosticInfo"), Param("Partition"))
def get_migration_endpoint(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        if "Identity" in p:
            endpoints = [ctx.tenant.find_endpoint(p.get("Identity"))]
        else:
            endpoints = list(ctx.tenant.endpoints.values())
    return Output(rows=rows_of(endpoints), render=endpoint_record)


@cmdlet("New-MigrationEndpoint", "MigrationEndpoint",
        Param("Name", required=True), Param("ExchangeRemoteMove", Kind.SWITCH),
        Param("RemoteServer"), Param("Credentials", Kind.CREDENTIAL),
        Param("MaxConcurrentMigrations", Kind.UNLIMITED),
        Param("MaxConcurrentIncrementalSyncs", Kind.UNLIMITED),
        Param("SkipVerification", Kind.SWITCH), Param("Autodiscover", Kind.SWITCH),
        Param("EmailAddress"), Param("RemoteTenant"), Param("ApplicationId"),
        Param("AppSecretKeyVaultUrl"), Param("Partition"), what_if=True)
def new_migration_endpoint(ctx: Context, p: Bound) -> Output:
    if not p.switch("ExchangeRemoteMove"):
        raise errors.parameter_binding(
            "Parameter set cannot be resolved using the specified named parameters. The lab "
            "supports only -ExchangeRemoteMove endpoints.")
    if p.switch("Autodiscover") or "RemoteServer" not in p:
        raise errors.bad_request("Specify -RemoteServer with the on-premises MRSProxy server "
                                 "name; Autodiscover isn't available in the lab.")
    name = str(p.get("Name")).strip()
    remote_server = str(p.get("RemoteServer")).strip()
    credential: Credential | None = p.get("Credentials")
    with ctx.tenant.lock:
        if name.lower() in ctx.tenant.endpoints:
            raise errors.already_exists(f"A migration endpoint named '{name}' already exists.")
    if not p.switch("SkipVerification"):
        outcome = _ping(ctx, remote_server, credential)
        if not outcome.ok:
            raise errors.bad_request(_connection_failed(remote_server, outcome), CONNECTION_FAILED)
    with ctx.tenant.lock:
        if name.lower() in ctx.tenant.endpoints:
            raise errors.already_exists(f"A migration endpoint named '{name}' already exists.")
        endpoint = MigrationEndpoint(
            seq=ctx.tenant.next_seq(), guid=ctx.tenant.new_guid(), name=name,
            remote_server=remote_server,
            username=credential.username if credential else None,
            password=credential.password if credential else None,
        )
        _limits(p, endpoint)
        ctx.tenant.endpoints[name.lower()] = endpoint
    return Output(rows=[(endpoint.seq, endpoint)], render=endpoint_record)


@cmdlet("Set-MigrationEndpoint", "MigrationEndpoint", Param("Identity", required=True),
        Param("RemoteServer"), Param("Credentials", Kind.CREDENTIAL),
        Param("MaxConcurrentMigrations", Kind.UNLIMITED),
        Param("MaxConcurrentIncrementalSyncs", Kind.UNLIMITED),
        Param("SkipVerification", Kind.SWITCH), Param("Partition"), what_if=True)
def set_migration_endpoint(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        endpoint = ctx.tenant.find_endpoint(p.get("Identity"))
        remote_server = str(p.get("RemoteServer", endpoint.remote_server)).strip()
        credential: Credential | None = p.get("Credentials")
        if credential is None and endpoint.username is not None:
            credential = Credential(endpoint.username, endpoint.password or "")
    if ("RemoteServer" in p or "Credentials" in p) and not p.switch("SkipVerification"):
        outcome = _ping(ctx, remote_server, credential)
        if not outcome.ok:
            raise errors.bad_request(_connection_failed(remote_server, outcome), CONNECTION_FAILED)
    with ctx.tenant.lock:
        _limits(p, endpoint)
        endpoint.remote_server = remote_server
        if "Credentials" in p:
            endpoint.username, endpoint.password = credential.username, credential.password  # type: ignore[union-attr]
    return Output()


@cmdlet("Remove-MigrationEndpoint", "MigrationEndpoint", Param("Identity", required=True),
        Param("Partition"), what_if=True)
def remove_migration_endpoint(ctx: Context, p: Bound) -> Output:
    with ctx.tenant.lock:
        endpoint = ctx.tenant.find_endpoint(p.get("Identity"))
        users = [b.name for b in ctx.tenant.batches.values() if b.endpoint == endpoint.name]
        if users:
            raise errors.bad_request(
                f"The migration endpoint '{endpoint.name}' is used by migration batch "
                f"'{users[0]}' and can't be removed.", f"{MIGRATION}.MigrationPermanentException")
        del ctx.tenant.endpoints[endpoint.name.lower()]
    return Output()


@cmdlet("Test-MigrationServerAvailability", "MigrationServerAvailability",
        Param("Endpoint"), Param("ExchangeRemoteMove", Kind.SWITCH), Param("RemoteServer"),
        Param("Credentials", Kind.CREDENTIAL), Param("Autodiscover", Kind.SWITCH),
        Param("EmailAddress"), Param("Partition"))
def test_migration_server_availability(ctx: Context, p: Bound) -> Output:
    tested: str | None = None
    if "Endpoint" in p:
        with ctx.tenant.lock:
            endpoint = ctx.tenant.find_endpoint(p.get("Endpoint"))
            tested, remote_server = endpoint.name, endpoint.remote_server
            credential = (Credential(endpoint.username, endpoint.password or "")
                          if endpoint.username else None)
    elif p.switch("ExchangeRemoteMove") and "RemoteServer" in p:
        remote_server, credential = str(p.get("RemoteServer")).strip(), p.get("Credentials")
    else:
        raise errors.parameter_binding(
            "Parameter set cannot be resolved using the specified named parameters. Use "
            "-Endpoint, or -ExchangeRemoteMove with -RemoteServer and -Credentials.")
    outcome = _ping(ctx, remote_server, credential)
    record = {
        "Result": "Success" if outcome.ok else "Failed",
        "Message": "" if outcome.ok else _connection_failed(remote_server, outcome),
        "ErrorDetail": None if outcome.ok else outcome.error_text,
        "ConnectionSettings": {"RemoteServer": remote_server,
                               "Username": credential.username if credential else None,
                               "EndpointType": "ExchangeRemoteMove"},
        "SupportsCutover": False,
        "TestedEndpoint": tested,
        "IsValid": True,
    }
    return Output(rows=[(1, record)], render=dict)


