"""Request and response values passed between the HTTP server and the API modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Request", "Response", "json_response", "text_response"]

JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_ip: str

    @property
    def base_url(self) -> str:
        """The scheme and authority the client used, for absolute links."""
        return f"https://{self.headers.get('host', '127.0.0.1')}"

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""  # appended to the request's log line (never secrets)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = JSON, note: str = "") -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, {"Content-Type": content_type, **(headers or {})}, note)


def text_response(status: int, text: str, headers: Mapping[str, str] | None = None,
                  note: str = "") -> Response:
    return Response(status, text.encode("utf-8"),
                    {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, note)
