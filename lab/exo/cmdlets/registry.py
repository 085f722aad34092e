"""The cmdlets the stand-in knows, each declared with its parameters.

A cmdlet is a function (context, bound parameters) -> Output, registered with
`@cmdlet(name, entity, params...)`. Handlers take the tenant lock themselves,
for in-memory work only, so a handler that calls the on-prem MRSProxy
(Test-MigrationServerAvailability) does it without holding it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.exo import errors
from lab.exo.cmdlets.binding import Bound, Kind, Param, bind
from lab.exo.moves import MoveSimulator
from lab.exo.mrsproxy_client import MrsProxyClient
from lab.exo.tenant import Tenant

__all__ = ["REGISTRY", "Cmdlet", "Context", "Output", "cmdlet", "invoke", "rows_of"]


@dataclass(frozen=True)
class Context:
    tenant: Tenant
    moves: MoveSimulator
    mrs: MrsProxyClient


def _identity(item: Any) -> dict[str, Any]:
    return dict(item)


@dataclass
class Output:
    """Rows in a stable order: (creation seq, item); *render* turns an item into a record."""

    rows: Sequence[tuple[int, Any]] = ()
    render: Callable[[Any], dict[str, Any]] = _identity
    result_size: int | None = None  # None: no limit (Unlimited)
    warnings: list[str] = field(default_factory=list)


Handler = Callable[[Context, Bound], Output]


@dataclass(frozen=True)
class Cmdlet:
    name: str
    entity: str  # the @odata.context entity set
    params: dict[str, Param]
    run: Handler


REGISTRY: dict[str, Cmdlet] = {}


def cmdlet(name: str, entity: str, *params: Param, what_if: bool = False) -> Callable[[Handler], Handler]:
    """Register *name*; mutating cmdlets take ``what_if=True`` (WhatIf does nothing)."""
    spec = {p.name.lower(): p for p in params}
    if what_if:
        spec["whatif"] = Param("WhatIf", Kind.SWITCH)

    def register(run: Handler) -> Handler:
        REGISTRY[name.lower()] = Cmdlet(name, entity, spec, run)
        return run

    return register


def rows_of(items: Sequence[Any]) -> list[tuple[int, Any]]:
    return [(item.seq, item) for item in items]


def invoke(ctx: Context, name: str, parameters: Any) -> tuple[Cmdlet, Output]:
    found = REGISTRY.get(str(name).lower())
    if found is None:
        raise errors.command_not_found(str(name)[:100])
    bound = bind(found.name, found.params, parameters)
    if bound.switch("WhatIf"):
        return found, Output()
    return found, found.run(ctx, bound)
