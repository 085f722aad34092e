"""TLS contexts: verification on by default, turning it off is explicit and logged."""

from __future__ import annotations

import ssl
from pathlib import Path

import structlog

__all__ = ["client_context"]

log = structlog.get_logger(__name__)


def client_context(ca_file: Path | None, *, verify: bool = True, what: str) -> ssl.SSLContext:
    """An SSL context trusting *ca_file* (or the system store); never reads REQUESTS_CA_BUNDLE."""
    if not verify:
        log.warning("tls.verification_disabled", connection=what)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
