"""The RabbitMQ management HTTP API: vhosts, permissions, policies, definitions.

Used by `homebound rabbitmq apply` and by the tests (a vhost per test module).
Each `rabbitmqctl` call costs most of a second; the HTTP API answers in
milliseconds, so it is preferred, with rabbitmqctl as the fallback when the
management plugin is not enabled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from typing import Any

import httpx

__all__ = ["BrokerAdmin", "ManagementUnavailable"]


class ManagementUnavailable(RuntimeError):
    pass


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class BrokerAdmin:
    def __init__(
        self, base_url: str = "http://127.0.0.1:15672", *, username: str = "guest",
        password: str = "guest", timeout: float = 10.0,  # noqa: S107 - RabbitMQ's local default
    ) -> None:
        self._http = httpx.Client(base_url=base_url, auth=(username, password), timeout=timeout)
        self._username = username
        self._has_api: bool | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BrokerAdmin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def has_api(self) -> bool:
        if self._has_api is None:
            try:
                self._has_api = self._http.get("/api/overview").status_code == 200
            except httpx.HTTPError:
                self._has_api = False
        return self._has_api

    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise RuntimeError(f"RabbitMQ API {method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def create_vhost(self, vhost: str, *, user: str | None = None) -> None:
        user = user or self._username
        if self.has_api:
            self._call("PUT", f"/api/vhosts/{_q(vhost)}", {})
            self._call("PUT", f"/api/permissions/{_q(vhost)}/{_q(user)}",
                       {"configure": ".*", "write": ".*", "read": ".*"})
        else:
            _rabbitmqctl("add_vhost", vhost)
            _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        if self.has_api:
            self._call("DELETE", f"/api/vhosts/{_q(vhost)}")
        else:
            _rabbitmqctl("delete_vhost", vhost)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any], *,
                   apply_to: str = "queues", priority: int = 0) -> None:
        if self.has_api:
            self._call("PUT", f"/api/policies/{_q(vhost)}/{_q(name)}", {
                "pattern": pattern, "definition": definition, "apply-to": apply_to,
                "priority": priority,
            })
        else:
            _rabbitmqctl("set_policy", "-p", vhost, "--apply-to", apply_to, "--priority",
                         str(priority), name, pattern, json.dumps(definition))

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        self._require_api()
        return dict(self._call("GET", f"/api/queues/{_q(vhost)}/{_q(name)}").json())

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        self._require_api()
        return list(self._call("GET", f"/api/queues/{_q(vhost)}").json())

    def policies(self, vhost: str) -> list[dict[str, Any]]:
        self._require_api()
        return list(self._call("GET", f"/api/policies/{_q(vhost)}").json())

    def import_definitions(self, vhost: str, definitions: dict[str, Any]) -> None:
        self._require_api()
        self._call("POST", f"/api/definitions/{_q(vhost)}", definitions)

    def connections(self) -> list[dict[str, Any]]:
        self._require_api()
        return list(self._call("GET", "/api/connections").json())

    def _require_api(self) -> None:
        if not self.has_api:
            raise ManagementUnavailable(
                "the RabbitMQ management API is not reachable: "
                "run `rabbitmq-plugins enable rabbitmq_management`"
            )


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise ManagementUnavailable("neither the management API nor rabbitmqctl is available")
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
