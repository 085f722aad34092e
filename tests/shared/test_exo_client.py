"""The product's Exchange Online client against the lab stand-in, with the real msal and httpx."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from agents.runtime.config import ExchangeOnlineSection
from agents.shared.exo_client import ExchangeOnlineClient, ExoAuthError, ExoError
from lab.certs import ensure_certificates
from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn

CLIENT_ID = str(uuid.uuid4())
TENANT_ID = str(uuid.uuid4())


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExoStandIn]:
    lab = tmp_path_factory.mktemp("exo-client")
    certs = ensure_certificates(lab / "tls")
    (lab / "secret").write_text("s3cret-value\n")
    config = ExoConfig(
        port=0, cert_file=certs.cert_file, key_file=certs.key_file, ca_file=certs.ca_file,
        tenant_id=TENANT_ID, seed_mailboxes=1200, log_requests=False,
        apps=[{"client_id": CLIENT_ID, "client_secret_file": str(lab / "secret"),
               "certificate_file": None}],
    )
    with ExoStandIn(config) as running:
        yield running


def section(standin: ExoStandIn, secret: str = "s3cret-value") -> ExchangeOnlineSection:
    return ExchangeOnlineSection(
        tenant="fabrikam.onmicrosoft.com", tenant_id=TENANT_ID, client_id=CLIENT_ID,
        client_secret=secret, authority_host=standin.base_url, api_base_url=standin.base_url,
        ca_file=standin.config.ca_file, routing_domain="fabrikam.mail.onmicrosoft.com",
        page_size=500,
    )


def test_pages_stream_every_mailbox_once(standin: ExoStandIn) -> None:
    client = ExchangeOnlineClient(section(standin))
    pages = list(client.pages("Get-Mailbox", {"ResultSize": "Unlimited"}))
    client.close()
    assert [len(p) for p in pages] == [500, 500, 200]
    guids = [row["ExchangeGuid"] for page in pages for row in page]
    assert len(set(guids)) == 1200
    assert not any("@odata" in key for page in pages for row in page for key in row)


def test_an_exchange_error_carries_its_exception_type(standin: ExoStandIn) -> None:
    client = ExchangeOnlineClient(section(standin))
    with pytest.raises(ExoError) as caught:
        client.invoke("Get-Mailbox", {"Identity": "nobody@fabrikam.example"})
    client.close()
    assert caught.value.exception_type == "ManagementObjectNotFoundException"
    assert caught.value.not_found


def test_a_wrong_secret_is_reported_without_echoing_it(standin: ExoStandIn) -> None:
    client = ExchangeOnlineClient(section(standin, secret="wrong-secret-value"))
    with pytest.raises(ExoAuthError) as caught:
        client.invoke("Get-AcceptedDomain")
    client.close()
    assert "AADSTS7000215" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def _throttle(standin: ExoStandIn, **settings: object) -> None:
    """Through the stand-in's control API, as an operator of the lab would."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(standin.config.ca_file))) as http:
        http.post(f"{standin.base_url}/lab/throttle", json=settings).raise_for_status()


def test_throttling_is_absorbed_by_waiting_as_told(standin: ExoStandIn) -> None:
    client = ExchangeOnlineClient(section(standin))
    _throttle(standin, requests_per_second=2, burst=2)
    try:
        started = time.monotonic()
        for _ in range(6):
            client.invoke("Get-AcceptedDomain")
        elapsed = time.monotonic() - started
    finally:
        _throttle(standin, requests_per_second=100, burst=200, refill=True)
        client.close()
    assert elapsed >= 1.0  # six calls at two per second had to wait for the budget
    assert client.calls > 6  # some were answered 429 and sent again
