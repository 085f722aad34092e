"""Test helpers: run the product's templates through the real pywinrm, seed users in Samba.

A script travels the way the exchange-configurator sends it: the template
file as is, UTF-16-LE + base64 on the command line, the request as ASCII
JSON on stdin in chunks that keep each WinRM envelope small.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ldap3
import winrm
from pydantic import BaseModel

import agents.exchange_configurator
from contracts.onprem import RESPONSE_MODELS
from tests.conftest import ldap_entries

SCRIPTS = Path(agents.exchange_configurator.__file__).parent / "scripts"
FLAGS = "powershell -NoProfile -NonInteractive -EncodedCommand"
STDIN_CHUNK = 128 * 1024

M = TypeVar("M", bound=BaseModel)


def template(operation: str) -> str:
    return (SCRIPTS / f"{operation}.ps1").read_bytes().decode("ascii")


def encoded_command(script: str, prefix: str = FLAGS) -> str:
    """The command line pywinrm sends (run_ps uses the prefix `powershell -encodedcommand`)."""
    return f"{prefix} {base64.b64encode(script.encode('utf-16-le')).decode('ascii')}"


def request_bytes(request: BaseModel) -> bytes:
    return json.dumps(request.model_dump(mode="json"), ensure_ascii=True).encode("ascii")


@dataclass
class Outcome:
    exit_code: int
    stdout: bytes
    stderr: bytes


class Shell:
    """One open WinRS shell on a pywinrm Protocol; several commands run in it."""

    def __init__(self, protocol: winrm.Protocol) -> None:
        self.protocol = protocol
        self.shell_id = protocol.open_shell()

    def run(self, command: str, stdin: bytes | None = None, *, chunk: int = STDIN_CHUNK) -> Outcome:
        command_id = self.protocol.run_command(self.shell_id, command)
        try:
            if stdin is not None:
                pieces = [stdin[i:i + chunk] for i in range(0, len(stdin), chunk)] or [b""]
                for index, piece in enumerate(pieces):
                    self.protocol.send_command_input(self.shell_id, command_id, piece,
                                                     end=index == len(pieces) - 1)
            stdout, stderr, code = self.protocol.get_command_output(self.shell_id, command_id)
        finally:
            self.protocol.cleanup_command(self.shell_id, command_id)
        return Outcome(code, stdout, stderr)

    def run_script(self, script: str, stdin: bytes | None = None, **kwargs: Any) -> Outcome:
        return self.run(encoded_command(script), stdin, **kwargs)

    def operation(self, request: BaseModel, response_type: type[M]) -> M:
        """Run the template of the request's operation; the parsed response (exit code 0 asserted)."""
        operation = next(op for op, model in RESPONSE_MODELS.items() if model is response_type)
        outcome = self.run_script(template(operation.value), request_bytes(request))
        assert outcome.exit_code == 0, outcome.stderr.decode(errors="replace")[:2000]
        return response_type.model_validate_json(outcome.stdout)

    def close(self) -> None:
        self.protocol.close_shell(self.shell_id)


def create_users(conn: ldap3.Connection, ou: str, count: int, *, prefix: str = "u",
                 display: str | None = None) -> list[tuple[str, uuid.UUID]]:
    """Plain AD users (no mail attributes) in *ou*: [(dn, objectGUID)] in creation order."""
    tag = uuid.uuid4().hex[:6]
    dns = []
    for index in range(count):
        dn = f"CN={prefix}{index:04d},{ou}"
        conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
            "sAMAccountName": f"{prefix[:4]}{tag}{index:05d}",
            "displayName": display or f"User {prefix}{index:04d}",
        })
        dns.append(dn)
    conn.search(ou, "(objectClass=user)", attributes=["objectGUID"], paged_size=1000)
    guids = {e["dn"].lower(): uuid.UUID(bytes_le=e["raw_attributes"]["objectGUID"][0])
             for e in ldap_entries(conn)}
    return [(dn, guids[dn.lower()]) for dn in dns]


def read_user(conn: ldap3.Connection, dn: str) -> dict[str, Any]:
    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[
        "msExchMailboxGuid", "proxyAddresses", "targetAddress", "msExchRecipientTypeDetails",
        "mailNickname", "mail", "displayName", "legacyExchangeDN", "uSNChanged",
    ])
    [entry] = ldap_entries(conn)
    return entry["raw_attributes"]  # type: ignore[no-any-return]


def text_values(raw: dict[str, Any], name: str) -> list[str]:
    return [v.decode("utf-8") for v in raw.get(name) or []]
