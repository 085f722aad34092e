"""The Windows Remote Shell service: shells, commands, stdin, output polling.

Lifecycle of one command, as WinRS runs it:

    Command  -> the command line is checked; a refused one completes at once
    Send     -> stdin chunks (base64), `End="true"` closes stdin and starts the script
    Receive  -> output so far + CommandState Running/Done (+ ExitCode); when there is
                nothing yet, the Receive is held up to the request's OperationTimeout,
                then answered with fault 2150858793, which clients treat as "poll again"
    Signal   -> terminate (the client's clean-up)
    Delete   -> the shell goes away with its commands

One deviation: a command that gets a Receive before any Send sees an empty,
closed stdin (real PowerShell would wait forever for input that
`Session.run_ps` never sends).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from lab.onprem import wsman
from lab.onprem.powershell import CommandResult
from lab.onprem.wsman import NS, WsmanFault, WsmanRequest

__all__ = ["Prepare", "Shells"]

# What the dispatcher does with a command line: refuse it at once, or return the
# function that runs it once stdin is complete.
Prepare = Callable[[str, list[str], bool, str], CommandResult | Callable[[bytes], CommandResult]]

_STATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/"
_DEFAULT_CLIENT_ENVELOPE = 153600
_MAX_STDIN = 64 * 1024 * 1024


@dataclass
class _Command:
    command_id: str
    run: Callable[[bytes], CommandResult] | None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    got_input: bool = False
    started: bool = False
    done: bool = False
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    sent_stdout: int = 0
    sent_stderr: int = 0
    reported_done: bool = False


@dataclass
class _Shell:
    shell_id: str
    user: str
    commands: dict[str, _Command] = field(default_factory=dict)


class Shells:
    """All open shells of one stand-in; thread-safe (one lock, one condition)."""

    def __init__(self, prepare: Prepare, *, max_shells_per_user: int, address: str) -> None:
        self._prepare = prepare
        self._max_shells = max_shells_per_user
        self._address = address
        self._shells: dict[str, _Shell] = {}
        self._changed = threading.Condition()
        self._closing = False

    # ------------------------------------------------------------------ entry point

    def handle(self, request: WsmanRequest, user: str) -> bytes:
        handlers = {
            wsman.ACTION["create"]: self._create,
            wsman.ACTION["delete"]: self._delete,
            wsman.ACTION["command"]: self._command,
            wsman.ACTION["send"]: self._send,
            wsman.ACTION["receive"]: self._receive,
            wsman.ACTION["signal"]: self._signal,
        }
        handler = handlers.get(request.action)
        if handler is None:
            raise WsmanFault(wsman.CODE_INVALID_REQUEST,
                             f"The action is not supported by the service: {request.action[:200]}",
                             subcode="a:ActionNotSupported", sender=True)
        return handler(request, user)

    def open_count(self) -> int:
        with self._changed:
            return len(self._shells)

    def close(self) -> None:
        """Wake every held Receive so the server can stop."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    # ------------------------------------------------------------------ actions

    def _create(self, request: WsmanRequest, user: str) -> bytes:
        with self._changed:
            owned = sum(1 for shell in self._shells.values() if shell.user == user)
            if owned >= self._max_shells:
                raise WsmanFault(
                    wsman.CODE_MAX_SHELLS,
                    f"The WS-Management service cannot process the request. This user is allowed a "
                    f"maximum number of {self._max_shells} concurrent shells, which has been exceeded. "
                    "Close existing shells or raise the quota for this user.",
                    subcode="w:QuotaLimit",
                )
            shell_id = str(uuid.uuid4()).upper()
            self._shells[shell_id] = _Shell(shell_id, user)
        body = (
            f"<x:ResourceCreated><a:Address>{self._address}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{wsman.RESOURCE_CMD}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            f"</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{wsman.RESOURCE_CMD}"
            f"</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner><rsp:InputStreams>stdin</rsp:InputStreams>"
            f"<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )
        return wsman.envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
                              request.message_id, body)

    def _delete(self, request: WsmanRequest, user: str) -> bytes:
        with self._changed:
            shell = self._shell(request, user)
            del self._shells[shell.shell_id]
            self._changed.notify_all()
        return wsman.envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
                              request.message_id, "")

    def _command(self, request: WsmanRequest, user: str) -> bytes:
        line = _find(request, "rsp:CommandLine")
        command = (line.findtext("rsp:Command", "", NS) or "").strip()
        arguments = [(a.text or "") for a in line.findall("rsp:Arguments", NS)]
        skip_cmd = request.options.get("WINRS_SKIP_CMD_SHELL", "FALSE").upper() == "TRUE"
        with self._changed:
            shell = self._shell(request, user)
        prepared = self._prepare(command, arguments, skip_cmd, user)
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        entry = _Command(command_id, None if isinstance(prepared, CommandResult) else prepared)
        if isinstance(prepared, CommandResult):
            entry.started = entry.done = entry.stdin_closed = True
            entry.stdout, entry.stderr, entry.exit_code = prepared.stdout, prepared.stderr, prepared.exit_code
        with self._changed:
            shell.commands[command_id] = entry
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        return wsman.envelope(f"{wsman.ACTION['command']}Response", request.message_id, body)

    def _send(self, request: WsmanRequest, user: str) -> bytes:
        stream = _find(request, "rsp:Send/rsp:Stream")
        try:
            chunk = base64.b64decode((stream.text or "").strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WsmanFault(wsman.CODE_INVALID_REQUEST, "The stdin stream is not base64.",
                             sender=True) from exc
        with self._changed:
            command = self._command_of(request, user, stream.get("CommandId"))
            if command.run is None:  # refused at once: like an exited process, it ignores input
                return wsman.envelope(f"{wsman.ACTION['send']}Response", request.message_id,
                                      "<rsp:SendResponse/>")
            if command.stdin_closed:
                raise WsmanFault(wsman.CODE_INVALID_REQUEST, "The stdin stream of this command is "
                                 "already closed.", sender=True)
            if len(command.stdin) + len(chunk) > _MAX_STDIN:
                raise WsmanFault(wsman.CODE_INVALID_REQUEST, "Too much input for one command.",
                                 subcode="w:QuotaLimit")
            command.stdin += chunk
            command.got_input = True
            if stream.get("End", "false").lower() == "true":
                self._start(command)
        return wsman.envelope(f"{wsman.ACTION['send']}Response", request.message_id,
                              "<rsp:SendResponse/>")

    def _receive(self, request: WsmanRequest, user: str) -> bytes:
        desired = _find(request, "rsp:Receive/rsp:DesiredStream")
        deadline = time.monotonic() + max(request.operation_timeout, 0.1)
        with self._changed:
            command = self._command_of(request, user, desired.get("CommandId"))
            if not command.got_input and not command.stdin_closed:
                self._start(command)  # see the module docstring: Receive before any Send
            while not command.done or command.reported_done:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    raise WsmanFault(
                        wsman.CODE_OPERATION_TIMEOUT,
                        "The WS-Management service cannot complete the operation within the time "
                        "specified in OperationTimeout.",
                        subcode="w:TimedOut",
                    )
                self._changed.wait(remaining)
                command = self._command_of(request, user, desired.get("CommandId"))
            body = self._take_output(command, request.max_envelope_size or _DEFAULT_CLIENT_ENVELOPE)
        return wsman.envelope(f"{wsman.ACTION['receive']}Response", request.message_id, body)

    def _signal(self, request: WsmanRequest, user: str) -> bytes:
        signal = _find(request, "rsp:Signal")
        with self._changed:
            shell = self._shell(request, user)
            command_id = (signal.get("CommandId") or "").upper()
            # terminate and ctrl_c both end the command; its output, if any, is dropped
            shell.commands.pop(command_id, None)
            self._changed.notify_all()
        return wsman.envelope(f"{wsman.ACTION['signal']}Response", request.message_id,
                              "<rsp:SignalResponse/>")

    # ------------------------------------------------------------------ helpers

    def _start(self, command: _Command) -> None:
        command.stdin_closed = True
        if command.started or command.run is None:
            return
        command.started = True
        run, stdin = command.run, bytes(command.stdin)
        command.stdin = bytearray()

        def work() -> None:
            try:
                result = run(stdin)
            except Exception:  # noqa: BLE001 - a bug in an operation must still end the command, not hang it
                result = CommandResult(b"", b"The stand-in failed while running the script.\r\n", 1)
            with self._changed:
                command.stdout, command.stderr = result.stdout, result.stderr
                command.exit_code, command.done = result.exit_code, True
                self._changed.notify_all()

        threading.Thread(target=work, name=f"winrs-{command.command_id[:8]}", daemon=True).start()

    def _take_output(self, command: _Command, client_envelope: int) -> str:
        # base64 grows by 4/3; keep well inside what the client accepts in one reply
        budget = max(1024, (client_envelope - 4096) * 3 // 4)
        out = command.stdout[command.sent_stdout: command.sent_stdout + budget]
        command.sent_stdout += len(out)
        err = command.stderr[command.sent_stderr: command.sent_stderr + budget - len(out)]
        command.sent_stderr += len(err)
        finished = command.sent_stdout == len(command.stdout) and command.sent_stderr == len(command.stderr)
        cid = command.command_id
        parts = [f'<rsp:Stream Name="{name}" CommandId="{cid}">{base64.b64encode(data).decode()}</rsp:Stream>'
                 for name, data in (("stdout", out), ("stderr", err)) if data]
        if finished:
            command.reported_done = True
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{_STATE}Done">'
                         f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState>")
        else:
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{_STATE}Running"/>')
        return f"<rsp:ReceiveResponse>{''.join(parts)}</rsp:ReceiveResponse>"

    def _shell(self, request: WsmanRequest, user: str) -> _Shell:
        shell = self._shells.get((request.shell_id or "").upper())
        if shell is None or shell.user != user:
            raise WsmanFault(
                wsman.CODE_SHELL_NOT_FOUND,
                f"The request for the Windows Remote Shell with ShellId {request.shell_id} failed "
                "because the shell was not found on the server. Possible causes are: the specified "
                "ShellId is incorrect or the shell no longer exists on the server. Provide the "
                "correct ShellId or create a new shell and retry the operation.",
                subcode="w:InvalidSelectors", sender=True,
            )
        return shell

    def _command_of(self, request: WsmanRequest, user: str, command_id: str | None) -> _Command:
        shell = self._shell(request, user)
        command = shell.commands.get((command_id or "").upper())
        if command is None:
            raise WsmanFault(
                wsman.CODE_SHELL_NOT_FOUND,
                f"The request for the Windows Remote Shell command {command_id} failed because the "
                "command was not found on the server.",
                subcode="w:InvalidSelectors", sender=True,
            )
        return command


def _find(request: WsmanRequest, path: str) -> ET.Element:
    element = request.body.find(path, NS) if request.body is not None else None
    if element is None:
        raise WsmanFault(wsman.CODE_INVALID_REQUEST, f"The request body has no {path}.", sender=True)
    return element
