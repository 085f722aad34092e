"""Fault and latency injection, driven through the loopback control API.

    POST /lab/faults   {"operation": "mail-enable", "alias": "x", "error": {"type": ..., "message": ...},
                        "times": 1}
    DELETE /lab/faults
    POST /lab/latency  {"ms": [min, max]}

A fault names a shell operation (`mail-enable`, `org-prepare`, ...) or an
MRSProxy request (`mrsproxy:open`, `mrsproxy:validate-target`, ...). With an
`alias`, only the matching recipient of a mail-enable fails (in the
per-recipient result, as Exchange reports it); without one, the whole script
fails (CLIXML on stderr, exit code 1) or the MRSProxy call answers the error.
`times` counts uses (default 1); `null` keeps the fault until DELETE.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from contracts.onprem import ShellError

__all__ = ["FaultRule", "LabControl", "LatencyRule"]


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: Annotated[str, Field(min_length=1, max_length=64)]
    alias: str | None = None
    error: ShellError
    times: Annotated[int, Field(ge=1)] | None = 1


class LatencyRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ms: tuple[Annotated[int, Field(ge=0, le=600_000)], Annotated[int, Field(ge=0, le=600_000)]]


class LabControl:
    def __init__(self, latency_ms: tuple[int, int]) -> None:
        self._lock = threading.Lock()
        self._faults: list[FaultRule] = []
        self._latency = latency_ms

    def add_fault(self, rule: FaultRule) -> None:
        with self._lock:
            self._faults.append(rule)

    def clear_faults(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    def faults(self) -> list[FaultRule]:
        with self._lock:
            return list(self._faults)

    def take_fault(self, operation: str, alias: str | None = None) -> ShellError | None:
        """Consume one use of the first rule for *operation* (and *alias*, None = script-wide)."""
        with self._lock:
            for index, rule in enumerate(self._faults):
                if rule.operation != operation:
                    continue
                if (rule.alias is None) != (alias is None):
                    continue
                if alias is not None and rule.alias is not None and rule.alias.lower() != alias.lower():
                    continue
                if rule.times is not None:
                    if rule.times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = rule.model_copy(update={"times": rule.times - 1})
                return rule.error
        return None

    def set_latency(self, rule: LatencyRule) -> None:
        low, high = rule.ms
        if low > high:
            raise ValueError("latency min must not exceed max")
        with self._lock:
            self._latency = (low, high)

    @property
    def latency_ms(self) -> tuple[int, int]:
        with self._lock:
            return self._latency

    def delay(self) -> None:
        """Sleep the configured latency (uniform between min and max)."""
        low, high = self.latency_ms
        if high > 0:
            time.sleep(random.uniform(low, high) / 1000)
