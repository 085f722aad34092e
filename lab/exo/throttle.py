"""Exchange Online's throttling as the product meets it: 429s, a concurrency cap, 503s, latency.

* A token bucket per tenant (``requests_per_second``, ``burst``): over budget,
  HTTP 429 with ``Retry-After`` in whole seconds; every answer carries
  ``Rate-Limit-Limit/Remaining/Reset``.
* More than ``max_concurrent_requests`` in flight: the request is refused with
  the body Exchange sends ("You have reached the maximum number of concurrent
  requests per tenant...").
* ``error_rate_503``: that share of requests fails with 503.
* ``latency_ms``: a uniform delay added to every admin API call (it counts as
  in flight, so latency makes the concurrency cap reachable).
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["Admission", "Throttle", "ThrottleSettings"]

CONCURRENCY_MESSAGE = ("You have reached the maximum number of concurrent requests per tenant. "
                       "Please wait and try again.")


@dataclass(frozen=True)
class ThrottleSettings:
    requests_per_second: float = 100
    burst: int = 200
    max_concurrent_requests: int = 16
    error_rate_503: float = 0.0
    latency_ms: tuple[int, int] = (0, 0)

    def updated(self, changes: dict[str, Any]) -> ThrottleSettings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known - {"refill"})
        if unknown:
            raise ValueError(f"unknown throttle settings {unknown}; known: {sorted(known)}")
        values = {k: v for k, v in changes.items() if k in known}
        if "latency_ms" in values:
            low, high = (int(v) for v in values["latency_ms"])
            if not 0 <= low <= high:
                raise ValueError("latency_ms must be [min, max] with 0 <= min <= max")
            values["latency_ms"] = (low, high)
        new = replace(self, **values)
        if new.requests_per_second <= 0 or new.burst < 1 or new.max_concurrent_requests < 1:
            raise ValueError("requests_per_second > 0, burst >= 1, max_concurrent_requests >= 1")
        if not 0 <= new.error_rate_503 <= 1:
            raise ValueError("error_rate_503 must be between 0 and 1")
        return new


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after: int  # seconds, when refused
    headers: dict[str, str]


class Throttle:
    """Thread-safe limiter for one tenant."""

    def __init__(self, settings: ThrottleSettings, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = settings
        self._tokens = float(settings.burst)
        self._stamp = time.monotonic()
        self._in_flight = 0
        self._rng = rng or random.Random()

    def configure(self, changes: dict[str, Any]) -> ThrottleSettings:
        with self._lock:
            self.settings = self.settings.updated(changes)
            self._tokens = min(self._tokens, float(self.settings.burst))
            if changes.get("refill"):
                self._tokens = float(self.settings.burst)
            return self.settings

    def _refill(self, now: float) -> None:
        s = self.settings
        self._tokens = min(float(s.burst), self._tokens + (now - self._stamp) * s.requests_per_second)
        self._stamp = now

    def admit(self) -> Admission:
        """Take one token from the bucket, or say how long to wait."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            s = self.settings
            allowed = self._tokens >= 1
            if allowed:
                self._tokens -= 1
            retry_after = 0 if allowed else max(1, math.ceil((1 - self._tokens) / s.requests_per_second))
            reset = math.ceil((s.burst - self._tokens) / s.requests_per_second)
            headers = {
                "Rate-Limit-Limit": str(s.burst),
                "Rate-Limit-Remaining": str(int(self._tokens)),
                "Rate-Limit-Reset": str(reset),
            }
            if not allowed:
                headers["Retry-After"] = str(retry_after)
            return Admission(allowed, retry_after, headers)

    def enter(self) -> bool:
        """Count one request in flight; False (and not counted) beyond the cap."""
        with self._lock:
            if self._in_flight >= self.settings.max_concurrent_requests:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def should_fail(self) -> bool:
        rate = self.settings.error_rate_503
        return rate > 0 and self._rng.random() < rate

    def delay(self) -> float:
        low, high = self.settings.latency_ms
        return self._rng.uniform(low, high) / 1000 if high else 0.0
