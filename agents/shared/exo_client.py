"""The Exchange Online admin API, as the EXO V3 PowerShell module calls it.

    client = ExchangeOnlineClient(config.exchange_online)
    for page in client.pages("Get-Mailbox", {"ResultSize": "Unlimited"}):
        ...

One httpx client (TLS verified, keep-alive) serves both msal (token
endpoint) and the `InvokeCommand` calls. Throttling is expected and handled
here, not by callers: 429 honours Retry-After (exponential backoff when it is
missing), 503/504/408 and the "maximum number of concurrent requests" body
are retried with backoff; what remains is raised as `ExoError` with the
Exchange exception type parsed out of `details[].message`
(`Ex6F9304|Microsoft.Exchange...ManagementObjectNotFoundException|text`).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import msal
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from agents.runtime.config import ExchangeOnlineSection
from agents.shared.tls import client_context

__all__ = ["ExchangeOnlineClient", "ExoAuthError", "ExoError", "ExoThrottled", "ExoUnavailable"]

log = structlog.get_logger(__name__)

SCOPE: Final = "https://outlook.office365.com/.default"
ANCHOR_MAILBOX: Final = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"
CONCURRENCY_BODY: Final = "maximum number of concurrent requests"


class ExoError(Exception):
    """A cmdlet failed; `exception_type` is Exchange's (ManagementObjectNotFoundException, ...)."""

    def __init__(self, cmdlet: str, status: int, code: str, exception_type: str, message: str) -> None:
        super().__init__(f"{cmdlet}: {exception_type or code}: {message}")
        self.cmdlet = cmdlet
        self.status = status
        self.code = code
        self.exception_type = exception_type
        self.message = message

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.exception_type or self.code == "NotFound"


class ExoAuthError(Exception):
    """The token endpoint refused the app's credentials (an AADSTS error)."""


class ExoThrottled(Exception):
    """Still throttled after every retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExoUnavailable(Exception):
    """The service could not be reached or kept answering 5xx."""


@dataclass(frozen=True)
class _Page:
    rows: list[dict[str, Any]]
    next_link: str | None


class _MsalTransport:
    """The httpx client as msal's `http_client`, sending form values as text.

    msal passes a certificate credential's client assertion as bytes, which
    httpx would form-encode as "b'...'" (Azure AD then answers AADSTS50027).
    """

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._http.get(url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._http.post(url, data=data, **kwargs)


def _strip_annotations(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if "@odata." not in k}


def _parse_error(cmdlet: str, response: httpx.Response) -> ExoError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return ExoError(cmdlet, response.status_code, str(response.status_code), "", response.text[:500])
    exception_type, message = "", str(error.get("message", ""))
    for detail in error.get("details") or []:
        parts = str(detail.get("message", "")).split("|", 2)
        if len(parts) == 3:
            exception_type = parts[1].rsplit(".", 1)[-1]
            message = parts[2]
            break
    return ExoError(cmdlet, response.status_code, str(error.get("code", "")), exception_type, message)


class ExchangeOnlineClient:
    def __init__(
        self, section: ExchangeOnlineSection, *, max_attempts: int = 8, max_wait: float = 300.0,
    ) -> None:
        self._section = section
        tenant = section.tenant_id or section.tenant
        self._tenant = tenant
        self._http = httpx.Client(
            verify=client_context(section.ca_file, verify=section.verify_tls, what="Exchange Online"),
            timeout=httpx.Timeout(section.timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_keepalive_connections=8, max_connections=16),
            headers={"User-Agent": "homebound/0.1"},
        )
        self._app = msal.ConfidentialClientApplication(
            section.client_id, authority=f"{section.authority_host}/{tenant}",
            client_credential=self._credential(), http_client=_MsalTransport(self._http),
            instance_discovery=False,
        )
        self._token_lock = threading.Lock()
        self._connection_id = str(uuid.uuid4())
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self.calls = 0  # InvokeCommand requests sent (for benchmarks and tests)

    def _credential(self) -> str | dict[str, str]:
        section = self._section
        if section.client_secret is not None:
            return section.client_secret.get_secret_value()
        if section.certificate_file and section.certificate_key_file:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes

            public = section.certificate_file.read_text()
            cert = x509.load_pem_x509_certificate(public.encode())
            return {
                "private_key": section.certificate_key_file.read_text(),
                "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - AAD's x5t
                "public_certificate": public,
            }
        raise ExoAuthError(
            "[exchange_online] needs client_secret_file, or certificate_file and certificate_key_file"
        )

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ public

    def invoke(
        self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *,
        select: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run one cmdlet and return every row of every page."""
        return [row for page in self.pages(cmdlet, parameters, select=select) for row in page]

    def find(self, cmdlet: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """The one object a Get- cmdlet names, or None when Exchange says it does not exist."""
        try:
            rows = self.invoke(cmdlet, parameters)
        except ExoError as exc:
            if exc.not_found:
                return None
            raise
        return rows[0] if rows else None

    def pages(
        self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *,
        select: list[str] | None = None, page_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Run one cmdlet and yield its results a page at a time (never the whole tenant)."""
        cursor: str | None = None
        while True:
            rows, cursor = self.page(cmdlet, parameters, select=select, page_size=page_size, cursor=cursor)
            yield rows
            if cursor is None:
                return

    def page(
        self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *,
        select: list[str] | None = None, page_size: int | None = None, cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page: the first (no *cursor*) or the one a previous page's cursor names.

        Returns the rows and the cursor of the next page (None after the last),
        so a long listing can be resumed later, even by another process.
        """
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": dict(parameters or {})}}
        url = cursor or f"{self._section.api_base_url}/adminapi/beta/{self._tenant}/InvokeCommand"
        params = {"$select": ",".join(select)} if select and cursor is None else None
        found = self._with_retries(cmdlet, url, body, params, page_size or self._section.page_size)
        return found.rows, found.next_link

    # ------------------------------------------------------------------ internals

    def _token(self) -> str:
        with self._token_lock:
            result = self._app.acquire_token_for_client(scopes=[SCOPE])
        if "access_token" not in result:
            raise ExoAuthError(f"{result.get('error')}: {str(result.get('error_description', ''))[:300]}")
        return str(result["access_token"])

    def _headers(self, page_size: int) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/json",
            "X-AnchorMailbox": f"{ANCHOR_MAILBOX}{self._section.tenant_id or self._tenant}",
            "Prefer": f"odata.maxpagesize={page_size}",
            "X-ResponseFormat": "json",
            "connection-id": self._connection_id,
            "client-request-id": str(uuid.uuid4()),
        }

    def _with_retries(
        self, cmdlet: str, url: str, body: dict[str, Any], params: dict[str, str] | None, size: int
    ) -> _Page:
        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, ExoThrottled) and error.retry_after is not None:
                return min(error.retry_after, 120.0)
            # exponential from half a second, capped at 30 s, with jitter so clients spread out
            backoff = min(30.0, 0.5 * 2.0 ** (int(state.attempt_number) - 1))
            return backoff + random.uniform(0, 0.5)  # noqa: S311 - jitter, not a secret

        def announce(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("exo.retrying", cmdlet=cmdlet, attempt=state.attempt_number,
                     reason=f"{type(error).__name__}: {str(error)[:160]}")

        retrying = Retrying(
            retry=retry_if_exception_type((ExoThrottled, ExoUnavailable)),
            wait=wait, before_sleep=announce, reraise=True,
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_wait),
        )
        return retrying(self._post, cmdlet, url, body, params, size)

    def _post(
        self, cmdlet: str, url: str, body: dict[str, Any], params: dict[str, str] | None, size: int
    ) -> _Page:
        try:
            self.calls += 1
            response = self._http.post(url, json=body, params=params, headers=self._headers(size))
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise ExoUnavailable(f"{cmdlet}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or CONCURRENCY_BODY in response.text[:400]:
            retry_after = response.headers.get("Retry-After")
            raise ExoThrottled(
                f"{cmdlet}: throttled ({status})",
                float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
            )
        if status in (408, 502, 503, 504):
            raise ExoUnavailable(f"{cmdlet}: HTTP {status}")
        if status == 401:
            raise ExoAuthError(f"{cmdlet}: the admin API refused the token (401)")
        if status >= 400:
            raise _parse_error(cmdlet, response)
        document = response.json()
        rows = [_strip_annotations(row) for row in document.get("value", [])]
        return _Page(rows, document.get("@odata.nextLink"))
