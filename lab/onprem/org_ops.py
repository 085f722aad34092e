"""org-inspect/1 and org-prepare/1 against the organisation model.

org-prepare behaves like its template: each item is read first (Get-…) and
changed only when it differs, so running the same request twice reports no
changes the second time. A failed item lands in `errors` and the others
still run, as the template's per-item try/catch does.
"""

from __future__ import annotations

import re

from contracts.onprem import (
    AcceptedDomain,
    OrgInspectRequest,
    OrgInspectResponse,
    OrgPrepareRequest,
    OrgPrepareResponse,
    SendConnector,
    ShellError,
)
from lab.onprem.backend import Backend
from lab.onprem.org import FREE_SPACE

__all__ = ["org_inspect", "org_prepare"]

_ADDRESS_SPACE = re.compile(r"^(?:smtp:)?(?:\*|\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*(?:;\d{1,3})?$|^\*$", re.I)


def org_inspect(backend: Backend, request: OrgInspectRequest) -> OrgInspectResponse:
    state = backend.org.snapshot()
    return OrgInspectResponse(
        exchange_version=state.exchange_version,
        accepted_domains=state.accepted_domains,
        send_connectors=state.send_connectors,
        ews_virtual_directories=state.ews_virtual_directories,
        mailbox_databases=state.mailbox_databases,
        recipient_validation_enabled=state.recipient_validation_enabled,
    )


def _normalise_space(space: str) -> str:
    """`fabrikam.mail.onmicrosoft.com` and `SMTP:fabrikam.mail.onmicrosoft.com;1` are the same space."""
    text = space.strip()
    text = "SMTP:" + (text[5:] if text.lower().startswith("smtp:") else text)
    return text if ";" in text else f"{text};1"


def _folded(values: list[str]) -> list[str]:
    return sorted(v.lower() for v in values)


def org_prepare(backend: Backend, request: OrgPrepareRequest) -> OrgPrepareResponse:
    changes: list[str] = []
    errors: list[ShellError] = []
    with backend.org.change() as state:
        for domain in request.accepted_domains:
            existing = next((d for d in state.accepted_domains
                             if d.domain_name.lower() == domain.domain_name.lower()), None)
            if existing is None:
                state.accepted_domains.append(AcceptedDomain(
                    name=domain.domain_name, domain_name=domain.domain_name,
                    domain_type=domain.domain_type))
                changes.append(f"Accepted domain '{domain.domain_name}' added as {domain.domain_type}")
            elif existing.domain_type != domain.domain_type:
                index = state.accepted_domains.index(existing)
                state.accepted_domains[index] = existing.model_copy(
                    update={"domain_type": domain.domain_type})
                changes.append(f"Accepted domain '{domain.domain_name}' changed from "
                               f"{existing.domain_type} to {domain.domain_type}")

        for connector in request.send_connectors:
            bad = [s for s in connector.address_spaces if not _ADDRESS_SPACE.match(s.strip())]
            if bad:
                errors.append(ShellError(
                    type="ParameterBindingException",
                    message=f"Cannot process argument transformation on parameter 'AddressSpaces'. "
                            f"'{bad[0][:100]}' isn't a valid address space."))
                continue
            spaces = [_normalise_space(s) for s in connector.address_spaces]
            wanted = SendConnector(name=connector.name, address_spaces=spaces,
                                   smart_hosts=list(connector.smart_hosts),
                                   dns_routing_enabled=not connector.smart_hosts)
            existing_connector = next((c for c in state.send_connectors
                                       if c.name.lower() == connector.name.lower()), None)
            if existing_connector is None:
                state.send_connectors.append(wanted)
                changes.append(f"Send connector '{connector.name}' created")
            elif (_folded(existing_connector.address_spaces) != _folded(spaces)
                  or _folded(existing_connector.smart_hosts) != _folded(connector.smart_hosts)):
                index = state.send_connectors.index(existing_connector)
                state.send_connectors[index] = wanted.model_copy(update={"name": existing_connector.name})
                changes.append(f"Send connector '{existing_connector.name}' address spaces updated")

        for identity in request.enable_mrsproxy:
            vdir = state.vdir(identity)
            if vdir is None:
                errors.append(backend.not_found(identity).as_shell_error())
            elif not vdir.mrsproxy_enabled:
                index = state.ews_virtual_directories.index(vdir)
                state.ews_virtual_directories[index] = vdir.model_copy(update={"mrsproxy_enabled": True})
                changes.append(f"MRSProxy enabled on '{vdir.identity}'")

        for name in request.mount_databases:
            database = state.database(name)
            if database is None:
                errors.append(backend.not_found(name).as_shell_error())
            elif not database.mounted:
                index = state.mailbox_databases.index(database)
                state.mailbox_databases[index] = database.model_copy(
                    update={"mounted": True, "available_new_mailbox_space_bytes": FREE_SPACE})
                changes.append(f"Database '{database.name}' mounted")
    return OrgPrepareResponse(changes=changes, errors=errors)
