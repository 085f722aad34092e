"""A small admin-API client for the tests: real msal for the token, real httpx for the calls.

Deliberately close to what the product's adapter does (PROTOCOLS.md), so the
tests exercise the stand-in the way the product will.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import msal

SCOPE = "https://outlook.office365.com/.default"


@dataclass(frozen=True)
class ExchangeError:
    """An admin-API error: HTTP status, top code, and details[0] split on '|'."""

    status: int
    code: str
    exception_type: str
    message: str

    @classmethod
    def from_response(cls, response: httpx.Response) -> ExchangeError:
        error = response.json()["error"]
        _, exception_type, message = error["details"][0]["message"].split("|", 2)
        return cls(response.status_code, error["code"], exception_type, message)

    @property
    def short_type(self) -> str:
        return self.exception_type.rsplit(".", 1)[-1]


class ExoClientError(Exception):
    def __init__(self, error: ExchangeError) -> None:
        super().__init__(f"{error.short_type}: {error.message}")
        self.error = error


class MsalHttp:
    """httpx for msal's `http_client=`, with one fix.

    msal hands a certificate's client assertion over as *bytes*, and httpx
    form-encodes a bytes value as ``b'...'``; Azure AD (and the stand-in) then
    answer AADSTS50027 "JWT token is invalid or malformed". Decoding the form
    values first makes certificate credentials work; secrets are unaffected.
    """

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self.http.post(url, data=data, **kwargs)


def msal_app(base_url: str, tenant: str, client_id: str, credential: Any,
             http: httpx.Client | MsalHttp) -> msal.ConfidentialClientApplication:
    """A new app per scenario: msal caches error answers per app instance."""
    return msal.ConfidentialClientApplication(
        client_id, client_credential=credential, authority=f"{base_url}/{tenant}",
        instance_discovery=False, http_client=http,
    )


class ExoClient:
    def __init__(self, base_url: str, tenant_id: str, client_id: str, credential: Any,
                 ca: ssl.SSLContext) -> None:
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.http = httpx.Client(verify=ca, timeout=30)
        self.app = msal_app(base_url, tenant_id, client_id, credential, MsalHttp(self.http))
        self.connection_id = str(uuid.uuid4())

    def token(self) -> str:
        result = self.app.acquire_token_for_client(scopes=[SCOPE])
        if "access_token" not in result:
            raise RuntimeError(f"{result.get('error')}: {result.get('error_description')}")
        return str(result["access_token"])

    def headers(self, page_size: int | None = 1000) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token()}",
            "X-AnchorMailbox": f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{self.tenant_id}",
            "X-ResponseFormat": "json",
            "connection-id": self.connection_id,
            "client-request-id": str(uuid.uuid4()),
        }
        if page_size is not None:
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        return headers

    @property
    def url(self) -> str:
        return f"{self.base_url}/adminapi/beta/{self.tenant_id}/InvokeCommand"

    @staticmethod
    def body(cmdlet: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters or {}}}

    def post(self, cmdlet: str, parameters: dict[str, Any] | None = None, *,
             url: str | None = None, select: str | None = None,
             page_size: int | None = 1000) -> httpx.Response:
        params = {"$select": select} if select and url is None else None
        return self.http.post(url or self.url, params=params, json=self.body(cmdlet, parameters),
                              headers=self.headers(page_size))

    def pages(self, cmdlet: str, parameters: dict[str, Any] | None = None, *,
              select: str | None = None, page_size: int | None = 1000) -> list[list[dict[str, Any]]]:
        """Every page, following @odata.nextLink with the same body."""
        pages, url = [], None
        while True:
            response = self.post(cmdlet, parameters, url=url, select=select, page_size=page_size)
            if response.status_code != 200:
                raise ExoClientError(ExchangeError.from_response(response))
            payload = response.json()
            pages.append(payload["value"])
            url = payload.get("@odata.nextLink")
            if not url:
                return pages

    def run(self, cmdlet: str, parameters: dict[str, Any] | None = None,
            **kwargs: Any) -> list[dict[str, Any]]:
        return [item for page in self.pages(cmdlet, parameters, **kwargs) for item in page]

    def close(self) -> None:
        self.http.close()
