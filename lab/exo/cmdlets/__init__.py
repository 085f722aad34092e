"""The Exchange Online cmdlets the stand-in answers (importing this registers them all)."""

from lab.exo.cmdlets import batches, endpoints, move_requests, organization, recipients
from lab.exo.cmdlets.registry import REGISTRY, Cmdlet, Context, Output, invoke

__all__ = ["REGISTRY", "Cmdlet", "Context", "Output", "invoke"]

_MODULES = (batches, endpoints, move_requests, organization, recipients)  # registered on import
