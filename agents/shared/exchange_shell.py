"""The on-premises Exchange Management Shell, reached over WinRM with pywinrm.

    with ExchangeShell(ShellSettings.from_section(config.onprem_exchange)) as shell:
        org = shell.run(OrgInspectRequest())          # -> OrgInspectResponse

Only the fixed templates of `agents/exchange_configurator/scripts` ever run:
the file's bytes, UTF-16-LE and base64, after `powershell ... -EncodedCommand`.
The request travels as ASCII JSON on the command's stdin, in chunks that keep
each WS-Management envelope far below MaxEnvelopeSizekb; the response is the
JSON line the script prints. No value from a request is ever part of a
command line, and neither stdin nor the password is ever logged.

`Session.run_ps` would open and close a shell (five round trips and a new
NTLM handshake) per script. Here a small pool of shells stays open: each
pooled session owns its own `Protocol` (one TCP connection, one NTLM
sealing context, not thread-safe), so a thread borrows a whole session for
one command. A session whose connection or shell broke is rebuilt on its
next use.

Errors, and what the agent runtime makes of them (they are HandlerErrors)::

    ExchangeShellError                 base of everything raised here
    ├── ShellUnavailable               transient: unreachable, timed out, WS-Man fault, shell lost
    ├── ShellCredentialsRefused        permanent: HTTP 401, fix the account or its password
    ├── ShellTlsRefused                permanent: the server certificate is not trusted (ca_file)
    ├── ShellCommandFailed             the script failed as a whole (non-zero exit, CLIXML on
    │                                  stderr): permanent when the classifier knows the error
    │                                  as permanent, otherwise transient
    └── ShellResponseInvalid           transient: exit 0 but stdout is not the contract's response
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import importlib.resources
import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, overload
from xml.sax.saxutils import unescape

import pydantic
import requests
import structlog
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from agents.shared.exchange_errors import classify
from contracts.events import ErrorClass
from contracts.onprem import (
    REQUEST_MODELS,
    RESPONSE_MODELS,
    MailEnableRequest,
    MailEnableResponse,
    Operation,
    OrgInspectRequest,
    OrgInspectResponse,
    OrgPrepareRequest,
    OrgPrepareResponse,
    RecipientReadRequest,
    RecipientReadResponse,
)
from events.errors import HandlerError, PermanentError, TransientError

if TYPE_CHECKING:
    from agents.runtime.config import HomeboundConfig, OnpremExchangeSection

__all__ = [
    "ExchangeShell",
    "ExchangeShellError",
    "ShellCommandFailed",
    "ShellCredentialsRefused",
    "ShellResponseInvalid",
    "ShellSettings",
    "ShellTlsRefused",
    "ShellUnavailable",
    "command_line",
    "parse_clixml_error",
    "probe",
    "request_json",
]

log = structlog.get_logger(__name__)

SCRIPTS_PACKAGE: Final = "agents.exchange_configurator"
POWERSHELL: Final = "powershell -NoLogo -NoProfile -NonInteractive -EncodedCommand"
CMD_LINE_LIMIT: Final = 8191  # cmd.exe, which WinRS starts commands through
# Each Send carries base64 (4/3) plus ~2 KB of SOAP; 96 KiB of stdin stays under even the
# 150 KB MaxEnvelopeSizekb of older servers, and far under today's 500 KB default.
STDIN_CHUNK_BYTES: Final = 96 * 1024
_SHELL_NOT_FOUND: Final = 2150858843  # the shell expired or the server restarted


# --------------------------------------------------------------------------- errors


class ExchangeShellError(HandlerError):
    """Base of the shell client's errors; each says how the runtime should treat it."""


class ShellUnavailable(ExchangeShellError, TransientError):
    """The server could not be reached or did not answer in time; retry later."""


class ShellCredentialsRefused(ExchangeShellError, PermanentError):
    """The server answered 401: the account or its password is wrong or locked out."""


class ShellTlsRefused(ExchangeShellError, PermanentError):
    """The server's certificate did not verify against the configured CA."""


class ShellResponseInvalid(ExchangeShellError, TransientError):
    """The script succeeded but its output is not the response the contract describes."""


class ShellCommandFailed(ExchangeShellError):
    """A script failed as a whole; `message`/`exception_type` come from the CLIXML error record."""

    def __init__(self, operation: Operation, exit_code: int, message: str, exception_type: str) -> None:
        verdict = classify(message, exception_type)
        permanent = verdict.error_class is ErrorClass.PERMANENT
        super().__init__(
            f"{operation.value} failed on the Exchange server (exit code {exit_code}): "
            f"{exception_type + ': ' if exception_type else ''}{message}"[:2000],
            remediation=verdict.remediation if permanent else "retried; if it persists, read the error",
            error_type=exception_type or "ShellCommandFailed",
        )
        # whole-script failures are mostly passing conditions (a DC restarting, the snap-in
        # loading slowly); only what the classifier knows as permanent is not retried
        self.error_class = ErrorClass.PERMANENT if permanent else ErrorClass.TRANSIENT
        self.operation = operation
        self.exit_code = exit_code
        self.message = message
        self.exception_type = exception_type


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ShellSettings:
    """How to reach the Exchange server's WinRM endpoint."""

    url: str  # http(s)://ex01.corp.example:5985|5986/wsman
    username: str
    password: str | None = field(default=None, repr=False)
    auth: str = "ntlm"  # ntlm | basic | kerberos | credssp
    ca_file: Path | None = None
    verify_tls: bool = True
    shells: int = 2
    operation_timeout_seconds: int = 20  # one WS-Man Receive is held at most this long
    command_timeout_seconds: float = 600.0  # one script, from Command to Done
    stdin_chunk_bytes: int = STDIN_CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.auth == "basic" and not self.url.lower().startswith("https://"):
            raise ValueError("Basic authentication over http:// would send the password in clear; "
                             "use an https:// URL or auth = \"ntlm\"")
        if self.password is None and self.auth != "kerberos":
            raise ValueError("no password for the on-prem Exchange account: set "
                             "HOMEBOUND_ONPREM_EXCHANGE_PASSWORD_FILE")
        if self.shells < 1 or self.operation_timeout_seconds < 1 or self.stdin_chunk_bytes < 1024:
            raise ValueError("shells >= 1, operation_timeout_seconds >= 1, stdin_chunk_bytes >= 1024")

    @classmethod
    def from_section(cls, section: OnpremExchangeSection) -> ShellSettings:
        return cls(
            url=section.url, username=section.username,
            password=section.password.get_secret_value() if section.password else None,
            auth=section.auth, ca_file=section.ca_file, verify_tls=section.verify_tls,
            shells=section.shells, operation_timeout_seconds=section.operation_timeout_seconds,
            command_timeout_seconds=section.command_timeout_seconds,
        )


# --------------------------------------------------------------------------- templates and data


@cache
def _template(operation: Operation) -> str:
    raw = (importlib.resources.files(SCRIPTS_PACKAGE) / "scripts" / f"{operation.value}.ps1").read_bytes()
    # ASCII only: the server compares what it decodes with the file, byte for byte
    return raw.decode("ascii")


@cache
def command_line(operation: Operation) -> str:
    """`powershell ... -EncodedCommand <base64 of the UTF-16-LE template>`: the template, nothing else."""
    encoded = base64.b64encode(_template(operation).encode("utf-16-le")).decode("ascii")
    line = f"{POWERSHELL} {encoded}"
    if len(line) > CMD_LINE_LIMIT:
        raise ValueError(f"{operation.value}.ps1 is too long for a command line ({len(line)} characters)")
    return line


def request_json(request: pydantic.BaseModel) -> bytes:
    """The request as ASCII JSON (non-ASCII as \\u escapes): the remote code page cannot garble it."""
    return json.dumps(request.model_dump(mode="json"), ensure_ascii=True,
                      separators=(",", ":")).encode("ascii")


_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.DOTALL)
_CATEGORY = re.compile(r"^\s*\+\s*CategoryInfo\s*:.*,\s*([\w.]+)\s*$")
_ERROR_ID = re.compile(r"^\s*\+\s*FullyQualifiedErrorId\s*:\s*([\w.]+)")


def parse_clixml_error(stderr: bytes) -> tuple[str, str]:
    """(message, exception type) from powershell.exe's stderr: CLIXML error records or plain text.

    The error strings are picked out with a pattern, not an XML parser: only the
    `<S S="Error">` texts matter, and the server's stderr is not trusted with
    entity expansion.
    """
    text = stderr.decode("utf-8", errors="replace")
    if text.startswith("#< CLIXML"):
        pieces = [unescape(piece, {"&quot;": '"', "&apos;": "'"}) for piece in _CLIXML_ERROR.findall(text)]
        text = _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(pieces))
    message: list[str] = []
    exception_type = ""
    for line in text.splitlines():
        category, error_id = _CATEGORY.match(line), _ERROR_ID.match(line)
        if category:
            exception_type = category.group(1)
        elif error_id and not exception_type:
            exception_type = error_id.group(1)
        elif line.strip() and not line.lstrip().startswith("+ "):
            message.append(line.strip())
    return " ".join(message)[:4000], exception_type


# --------------------------------------------------------------------------- one pooled session


@dataclass
class _Outcome:
    stdout: bytes
    stderr: bytes
    exit_code: int


class _Session:
    """One Protocol (one connection) and one open shell, used by one thread at a time."""

    def __init__(self, settings: ShellSettings) -> None:
        self._settings = settings
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._orphan: str | None = None  # a shell left behind by a broken connection

    def _connect(self) -> Protocol:
        if self._protocol is None:
            s = self._settings
            transport = {"basic": "basic", "ntlm": "ntlm", "kerberos": "kerberos",
                         "credssp": "credssp"}[s.auth]
            self._protocol = Protocol(
                s.url, transport=transport,  # type: ignore[arg-type]
                username=s.username, password=s.password,
                server_cert_validation="validate" if s.verify_tls else "ignore",
                # an explicit trust path; None means requests' own bundle, never REQUESTS_CA_BUNDLE
                ca_trust_path=str(s.ca_file) if s.ca_file else None,  # type: ignore[arg-type]
                operation_timeout_sec=s.operation_timeout_seconds,
                read_timeout_sec=s.operation_timeout_seconds + 10,
                message_encryption="auto",  # sealed over http (NTLM/Kerberos), TLS over https
                proxy=None,
            )
        return self._protocol

    def _shell(self) -> str:
        protocol = self._connect()
        if self._shell_id is None:
            self._shell_id = protocol.open_shell()  # code page 437 is fine: stdin and stdout are ASCII
            log.debug("exchange_shell.opened")
            if self._orphan is not None:  # the server keeps it until its idle timeout otherwise
                orphan, self._orphan = self._orphan, None
                with contextlib.suppress(Exception):
                    protocol.close_shell(orphan, close_session=False)
        return self._shell_id

    def reset(self) -> None:
        """Forget the connection (and its NTLM context); the next command reconnects."""
        if self._shell_id is not None:
            self._orphan = self._shell_id
        self._shell_id = None
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            with contextlib.suppress(Exception):
                protocol.transport.close_session()

    def close(self) -> None:
        protocol, shell_id = self._protocol, self._shell_id
        self._protocol = self._shell_id = None
        if protocol is not None and shell_id is not None:
            with contextlib.suppress(Exception):
                protocol.close_shell(shell_id)
        elif protocol is not None:
            with contextlib.suppress(Exception):
                protocol.transport.close_session()

    def execute(self, command: str, stdin: bytes) -> _Outcome:
        command_id = self._start(command)
        assert self._protocol is not None and self._shell_id is not None
        protocol, shell_id = self._protocol, self._shell_id
        finished = False
        try:
            chunk = self._settings.stdin_chunk_bytes
            pieces = [stdin[i:i + chunk] for i in range(0, len(stdin), chunk)] or [b""]
            for index, piece in enumerate(pieces):
                protocol.send_command_input(shell_id, command_id, piece, end=index == len(pieces) - 1)
            outcome = self._receive(protocol, shell_id, command_id)
            finished = True
            return outcome
        except Exception as exc:
            self.reset()
            raise _translate(exc) from exc
        finally:
            if finished:
                try:
                    protocol.cleanup_command(shell_id, command_id)
                except Exception:  # noqa: BLE001 - the output is in; a broken shell is rebuilt next time
                    self.reset()

    def _start(self, command: str) -> str:
        """Start the command; a stale connection or an expired shell is rebuilt once."""
        for attempt in (1, 2):
            try:
                shell_id = self._shell()
                return self._connect().run_command(shell_id, command)
            except Exception as exc:
                error = _translate(exc)
                self.reset()
                if attempt == 2 or not isinstance(error, ShellUnavailable):
                    raise error from exc
                log.info("exchange_shell.reconnecting", reason=str(error)[:200])
        raise AssertionError("unreachable")

    def _receive(self, protocol: Protocol, shell_id: str, command_id: str) -> _Outcome:
        deadline = time.monotonic() + self._settings.command_timeout_seconds
        stdout, stderr = bytearray(), bytearray()
        while True:
            if time.monotonic() > deadline:
                raise ShellUnavailable(
                    f"the script did not finish within {self._settings.command_timeout_seconds:.0f} s")
            try:
                out, err, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # the server held the Receive for OperationTimeout: still running
            stdout += out
            stderr += err
            if done:
                return _Outcome(bytes(stdout), bytes(stderr), exit_code)


def _translate(exc: BaseException) -> ExchangeShellError:
    """pywinrm's and requests' exceptions as this module's; never with the password in them."""
    if isinstance(exc, ExchangeShellError):
        return exc
    if isinstance(exc, InvalidCredentialsError):
        return ShellCredentialsRefused(
            "the on-prem Exchange server refused the credentials (HTTP 401)",
            remediation="check [onprem_exchange] username and the password file; is the account locked?")
    if isinstance(exc, requests.exceptions.SSLError):
        return ShellTlsRefused(
            f"TLS with the on-prem Exchange server failed: {str(exc)[:300]}",
            remediation="set [onprem_exchange] ca_file to the CA that issued the server's certificate")
    if isinstance(exc, WSManFaultError):
        lost = exc.wsman_fault_code == _SHELL_NOT_FOUND
        return ShellUnavailable(
            f"WS-Management fault {exc.wsman_fault_code or exc.code}: {(exc.reason or '')[:300]}"
            + (" (the shell is gone; a new one is opened)" if lost else ""))
    if isinstance(exc, requests.exceptions.Timeout):
        return ShellUnavailable(f"the on-prem Exchange server did not answer in time: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.RequestException):
        return ShellUnavailable(f"cannot reach the on-prem Exchange server: {type(exc).__name__}: "
                                f"{str(exc)[:300]}")
    if isinstance(exc, WinRMTransportError):
        return ShellUnavailable(f"the on-prem Exchange server answered HTTP {exc.code}")
    # anything else from pywinrm (an unparsable reply, an unexpected RelatesTo) is retried too:
    # after the runtime's last delay it is dead-lettered with this text
    return ShellUnavailable(f"WinRM failed: {type(exc).__name__}: {str(exc)[:300]}")


# --------------------------------------------------------------------------- the client


_OPERATION_OF: Final[dict[type[pydantic.BaseModel], Operation]] = {
    model: operation for operation, model in REQUEST_MODELS.items()}


class ExchangeShell:
    """Runs the shell operations of `contracts.onprem` on a pool of open WinRM shells."""

    def __init__(self, settings: ShellSettings) -> None:
        self.settings = settings
        if not settings.verify_tls:
            log.warning("tls.verification_disabled", connection="on-prem Exchange WinRM",
                        url=settings.url)
        self._idle: queue.LifoQueue[_Session] = queue.LifoQueue()
        self._all = [_Session(settings) for _ in range(settings.shells)]
        for session in self._all:
            self._idle.put(session)
        self._closed = threading.Event()

    @classmethod
    def from_section(cls, section: OnpremExchangeSection) -> ExchangeShell:
        return cls(ShellSettings.from_section(section))

    @overload
    def run(self, request: OrgInspectRequest) -> OrgInspectResponse: ...
    @overload
    def run(self, request: OrgPrepareRequest) -> OrgPrepareResponse: ...
    @overload
    def run(self, request: MailEnableRequest) -> MailEnableResponse: ...
    @overload
    def run(self, request: RecipientReadRequest) -> RecipientReadResponse: ...

    def run(self, request: pydantic.BaseModel) -> pydantic.BaseModel:
        """Run the request's operation; its parsed response, or one of this module's errors."""
        if self._closed.is_set():
            raise ShellUnavailable("the Exchange shell client is closed")
        operation = _OPERATION_OF[type(request)]
        command, stdin = command_line(operation), request_json(request)
        started = time.perf_counter()
        session = self._idle.get()
        try:
            outcome = session.execute(command, stdin)
        finally:
            self._idle.put(session)
        seconds = round(time.perf_counter() - started, 4)
        log.info("exchange_shell.ran", operation=operation.value, seconds=seconds,
                 stdin_bytes=len(stdin), stdout_bytes=len(outcome.stdout), exit_code=outcome.exit_code)
        if outcome.exit_code != 0:
            message, exception_type = parse_clixml_error(outcome.stderr)
            raise ShellCommandFailed(operation, outcome.exit_code, message or "(no error text)",
                                     exception_type)
        try:
            return RESPONSE_MODELS[operation].model_validate_json(outcome.stdout.decode("utf-8-sig").strip())
        except (pydantic.ValidationError, UnicodeDecodeError) as exc:
            raise ShellResponseInvalid(
                f"{operation.value} answered something that is not its response: "
                f"{str(exc).splitlines()[0][:300]}") from exc

    def close(self) -> None:
        """Close every open shell (waits for commands in progress)."""
        if self._closed.is_set():
            return
        self._closed.set()
        for _ in self._all:
            self._idle.get().close()

    def __enter__(self) -> ExchangeShell:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def probe(config: HomeboundConfig) -> str:
    """`config check --connect`: open a shell, inspect the organisation, name the version."""
    section = config.require("onprem_exchange", needed_by="the on-prem Exchange check")
    with ExchangeShell(dataclasses.replace(ShellSettings.from_section(section), shells=1)) as shell:
        org = shell.run(OrgInspectRequest())
    servers = sorted({v.server for v in org.ews_virtual_directories})
    return f"Exchange {org.exchange_version}; servers {', '.join(servers) or 'none'}"
