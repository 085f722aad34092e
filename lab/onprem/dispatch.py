"""From a WinRS command line to an operation: header dispatch, stdin JSON, the script log.

The stand-in never interprets PowerShell. A script is accepted when its first
line is `# homebound-op: <op>/<version>` naming a known operation (and, with
`templates_dir`, when its whole text is byte-identical to that template);
the Python implementation of the operation then reads the JSON request from
stdin and writes the JSON response to stdout. Everything else fails the way
powershell.exe does: exit code 1 and an error record as CLIXML on stderr.

Every command is recorded in `<state_dir>/scripts.jsonl` (time, user, op,
version, sha256, the full script text, stdin size, exit code) so security
tests can check that no mailbox data ever travelled inside a script. Stdin
itself is never recorded: it carries the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.onprem import (
    OPERATION_VERSION,
    REQUEST_MODELS,
    Operation,
    parse_op_header,
)
from lab.onprem import powershell
from lab.onprem.backend import Backend
from lab.onprem.org_ops import org_inspect, org_prepare
from lab.onprem.powershell import CommandResult, EncodedScript, failed
from lab.onprem.recipients import mail_enable, recipient_read

__all__ = ["ScriptLog", "ScriptRunner"]

log = logging.getLogger(__name__)

_OPERATIONS: dict[Operation, Callable[[Backend, Any], BaseModel]] = {
    Operation.ORG_INSPECT: org_inspect,
    Operation.ORG_PREPARE: org_prepare,
    Operation.MAIL_ENABLE: mail_enable,
    Operation.RECIPIENT_READ: recipient_read,
}


class ScriptLog:
    """Append-only JSON lines; readable while the stand-in runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.path.exists():
                return []
            lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class ScriptRunner:
    def __init__(self, backend: Backend, script_log: ScriptLog, templates_dir: Path | None) -> None:
        self._backend = backend
        self._log = script_log
        self._templates = templates_dir

    def prepare(self, command: str, arguments: list[str], skip_cmd_shell: bool,
                user: str) -> CommandResult | Callable[[bytes], CommandResult]:
        """Refuse the command now, or return what runs it once stdin is complete."""
        parsed = powershell.parse_command_line(command, arguments, skip_cmd_shell=skip_cmd_shell)
        if isinstance(parsed, CommandResult):
            self._record(user, None, " ".join([command, *arguments]), parsed, 0, is_script=False)
            return parsed
        return self._plan(parsed, user)

    def _plan(self, parsed: EncodedScript, user: str) -> CommandResult | Callable[[bytes], CommandResult]:
        script = parsed.script
        header = parse_op_header(script)
        operation = _known(header)
        if operation is None:
            # a known header with an unknown op or version names itself; otherwise the first cmdlet
            term = f"{header[0]}/{header[1]}" if header else powershell.first_command_word(script)
            result = powershell.not_recognized(term)
            self._record(user, header, script, result, 0)
            return result
        if self._templates is not None and not self._matches_template(operation, script):
            result = failed(
                f"File {operation.value}.ps1 cannot be loaded. The contents of the script differ from "
                "the approved template, so it was refused (lab: templates_dir is set).",
                "PSSecurityException", "SecurityError",
            )
            self._record(user, header, script, result, 0)
            return result

        def run(stdin: bytes) -> CommandResult:
            result = self._run(operation, stdin)
            self._record(user, header, script, result, len(stdin))
            return result

        return run

    def _matches_template(self, operation: Operation, script: str) -> bool:
        assert self._templates is not None
        path = self._templates / f"{operation.value}.ps1"
        try:
            return path.read_bytes() == script.encode("utf-8")
        except OSError:
            return False

    def _run(self, operation: Operation, stdin: bytes) -> CommandResult:
        self._backend.control.delay()
        fault = self._backend.control.take_fault(operation.value)
        if fault is not None:
            return failed(fault.message, fault.type)
        request = _parse_request(operation, stdin)
        if isinstance(request, CommandResult):
            return request
        response = _OPERATIONS[operation](self._backend, request)
        # ConvertTo-Json -Compress output, then the line end PowerShell adds; the templates escape
        # non-ASCII characters, so the reply is ASCII whatever the console code page is.
        text = json.dumps(response.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))
        return CommandResult((text + "\r\n").encode("ascii"), b"", 0)

    def _record(self, user: str, header: tuple[str, int] | None, text: str, result: CommandResult,
                stdin_bytes: int, *, is_script: bool = True) -> None:
        entry = {
            "time": _now(),
            "user": user,
            "op": header[0] if header else None,
            "version": header[1] if header else None,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "script": text if is_script else None,
            "command_line": None if is_script else text,  # a refused, non-script command
            "stdin_bytes": stdin_bytes,
            "exit_code": result.exit_code,
        }
        self._log.append(entry)
        log.info("ran %s/%s for %s: exit %d (%d bytes in)", entry["op"], entry["version"], user,
                 result.exit_code, stdin_bytes)


def _known(header: tuple[str, int] | None) -> Operation | None:
    if header is None:
        return None
    op, version = header
    try:
        operation = Operation(op)
    except ValueError:
        return None
    return operation if version == OPERATION_VERSION else None


def _parse_request(operation: Operation, stdin: bytes) -> BaseModel | CommandResult:
    """ConvertFrom-Json of stdin, then the contract's request model; failures as PowerShell reports them."""
    try:
        text = stdin.decode("utf-8-sig")
    except UnicodeDecodeError:
        return failed("Invalid JSON primitive: the input is not UTF-8 text.", "ArgumentException",
                      "NotSpecified")
    if not text.strip():
        return failed(
            "Cannot bind argument to parameter 'InputObject' because it is an empty string.",
            "ParameterBindingValidationException", "InvalidData",
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return failed(f"Invalid JSON primitive (line {exc.lineno}, column {exc.colno}).",
                      "ArgumentException", "NotSpecified")
    try:
        return REQUEST_MODELS[operation].model_validate(document)
    except ValidationError as exc:
        # never echo the input (it is mailbox data): custom validators quote it in their message
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: "
            + ("invalid value" if error["type"] == "value_error" else error["msg"])
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
        return failed(f"The request does not match {operation.value}/{OPERATION_VERSION}: {problems}",
                      "ParameterBindingException", "InvalidArgument")
