"""WS-Management SOAP as the Windows Remote Shell (WinRS) speaks it: parse requests, build replies and faults.

Only the shape pywinrm and other WinRS clients rely on: the addressing
headers (Action, MessageID -> RelatesTo), the ShellId selector, the
OperationTimeout and MaxEnvelopeSize headers, the WINRS_* options, and
faults as HTTP 500 with `s:Fault` + `f:WSManFault Code="…"`.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "ACTION",
    "NS",
    "WsmanFault",
    "WsmanRequest",
    "envelope",
    "fault_envelope",
    "parse_request",
]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}

_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTION = {
    "create": "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
    "delete": "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
    "command": f"{_SHELL}/Command",
    "send": f"{_SHELL}/Send",
    "receive": f"{_SHELL}/Receive",
    "signal": f"{_SHELL}/Signal",
}
RESOURCE_CMD = f"{_SHELL}/cmd"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# WSManFault codes (the HRESULT as an unsigned decimal, as Windows writes it).
CODE_OPERATION_TIMEOUT = 2150858793  # 0x80338029, Receive found no output in time; clients poll again
CODE_SHELL_NOT_FOUND = 2150858843  # 0x8033805B, unknown ShellId (also used for an unknown CommandId)
CODE_MAX_ENVELOPE = 2150859025  # 0x80338111, request larger than MaxEnvelopeSizekb
CODE_MAX_SHELLS = 2150859174  # 0x803381A6, MaxShellsPerUser reached
CODE_INVALID_REQUEST = 2150858771  # lab's choice for malformed or unsupported requests

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


@dataclass
class WsmanFault(Exception):
    """A fault the service answers instead of a reply (HTTP 500)."""

    code: int
    reason: str
    subcode: str = "w:InternalError"
    sender: bool = False  # s:Sender (the request was wrong) or s:Receiver

    def __str__(self) -> str:
        return f"WSManFault {self.code}: {self.reason}"


@dataclass
class WsmanRequest:
    action: str
    message_id: str
    resource_uri: str
    shell_id: str | None
    operation_timeout: float  # seconds
    max_envelope_size: int | None  # what the client accepts in a reply, bytes
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None


def _duration_seconds(text: str | None, default: float) -> float:
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def parse_request(data: bytes) -> WsmanRequest:
    """The parts of a WS-Man request the shell needs; WsmanFault if it is not one."""
    if b"<!DOCTYPE" in data[:4096].upper():
        raise WsmanFault(CODE_INVALID_REQUEST, "Document type declarations are not accepted.", sender=True)
    try:
        # expat with DOCTYPEs refused above: no entity expansion, no external entities
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise WsmanFault(CODE_INVALID_REQUEST, "The WS-Management service cannot process the "
                         "request because the XML is invalid.", sender=True) from exc
    header = root.find("s:Header", NS)
    if root.tag != f"{{{NS['s']}}}Envelope" or header is None:
        raise WsmanFault(CODE_INVALID_REQUEST, "The request is not a SOAP 1.2 envelope.", sender=True)
    action = (header.findtext("a:Action", "", NS) or "").strip()
    message_id = (header.findtext("a:MessageID", "", NS) or "").strip()
    if not action or not message_id:
        raise WsmanFault(CODE_INVALID_REQUEST, "The request has no Action or MessageID header.",
                         subcode="a:MessageInformationHeaderRequired", sender=True)
    selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
    max_env = header.findtext("w:MaxEnvelopeSize", None, NS)
    options = {
        option.get("Name", ""): (option.text or "").strip()
        for option in header.findall("w:OptionSet/w:Option", NS)
    }
    return WsmanRequest(
        action=action,
        message_id=message_id,
        resource_uri=(header.findtext("w:ResourceURI", "", NS) or "").strip(),
        shell_id=(selector.text or "").strip() if selector is not None else None,
        operation_timeout=_duration_seconds(header.findtext("w:OperationTimeout", None, NS), 60.0),
        max_envelope_size=int(max_env) if max_env and max_env.strip().isdigit() else None,
        options=options,
        body=root.find("s:Body", NS),
    )


def _namespaces() -> str:
    return " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items() if prefix != "f")


def envelope(action: str, relates_to: str, body: str) -> bytes:
    """A reply: *action* is the response action URI, *body* the inner XML of s:Body."""
    return (
        f'<s:Envelope xml:lang="en-US" {_namespaces()}><s:Header>'
        f"<a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault_envelope(fault: WsmanFault, relates_to: str | None, machine: str) -> bytes:
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    role = "s:Sender" if fault.sender else "s:Receiver"
    return (
        f'<s:Envelope xml:lang="en-US" {_namespaces()}><s:Header>'
        f"<a:Action>{FAULT_ACTION}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>{relates}</s:Header><s:Body><s:Fault>"
        f"<s:Code><s:Value>{role}</s:Value><s:Subcode><s:Value>{escape(fault.subcode)}</s:Value>"
        f"</s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.code}" Machine={quoteattr(machine)}>'
        f"<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail>"
        f"</s:Fault></s:Body></s:Envelope>"
    ).encode()
