"""`homebound config check --connect` for [exchange_online]: a token, then one read-only cmdlet."""

from __future__ import annotations

from agents.runtime.config import HomeboundConfig

__all__ = ["check_exchange_online"]


def check_exchange_online(config: HomeboundConfig) -> str:
    """Acquire a token and run Get-AcceptedDomain; msal and httpx load only when this runs."""
    from agents.shared.exo_client import ExchangeOnlineClient

    section = config.require("exchange_online", needed_by="the connection check")
    client = ExchangeOnlineClient(section)
    try:
        domains = client.invoke("Get-AcceptedDomain")
    finally:
        client.close()
    return f"tenant {section.tenant}, {len(domains)} accepted domains"
