"""NTLM over HTTP as WinRM does it: the handshake per TCP connection and MS-WSMV message sealing.

The handshake (`Authorization: Negotiate|NTLM <base64>`) authenticates the
connection, not a request: later requests on the same connection carry no
header. Over plain HTTP pywinrm then seals every SOAP body with the NTLM
session keys and frames it as `multipart/encrypted` (MS-WSMV 2.2.9.1.1)::

    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<n>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <4-byte LE signature length><16-byte signature><sealed data>
    --Encrypted Boundary--\\r\\n

The acceptor is pyspnego's NTLM (credentials from `NTLM_USER_FILE`). Over
HTTPS the acceptor also checks the client's channel binding (the
`tls-server-end-point` hash of our certificate), as Windows does with
CbtHardeningLevel Strict.
"""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

__all__ = [
    "ENCRYPTED_CONTENT_TYPE",
    "AuthenticationFailed",
    "NtlmConnection",
    "SealingError",
    "channel_bindings_for",
    "is_encrypted",
    "seal",
    "unseal",
]

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"
_OCTET_HEADER = b"\tContent-Type: application/octet-stream\r\n"
_LENGTH = re.compile(rb"Length=(\d+)")


class AuthenticationFailed(Exception):
    """The client's NTLM messages did not prove a known account (answer 401)."""


class SealingError(Exception):
    """A sealed body that does not unseal: wrong framing, tampering or a stale context."""


def channel_bindings_for(cert_file: Path) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point bindings of the first certificate in *cert_file*."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


class NtlmConnection:
    """The NTLM acceptor state of one TCP connection."""

    def __init__(self, channel_bindings: GssChannelBindings | None = None) -> None:
        self._bindings = channel_bindings
        self._context: spnego.ContextProxy | None = None
        self.user: str | None = None

    @property
    def established(self) -> bool:
        return self.user is not None and self._context is not None

    @property
    def context(self) -> spnego.ContextProxy:
        if self._context is None or self.user is None:
            raise SealingError("no NTLM session on this connection")
        return self._context

    def step(self, token_b64: str) -> bytes | None:
        """Feed one client token; return the challenge to send back, or None once authenticated."""
        try:
            token = base64.b64decode(token_b64, validate=True)
        except ValueError as exc:
            raise AuthenticationFailed("token is not base64") from exc
        message_type = struct.unpack("<I", token[8:12])[0] if len(token) >= 12 else 0
        if not token.startswith(b"NTLMSSP\x00"):
            raise AuthenticationFailed("only raw NTLM tokens are accepted")
        if message_type == 1:  # NEGOTIATE starts a new handshake, even on an authenticated connection
            self.user = None
            self._context = spnego.server(protocol="ntlm", channel_bindings=self._bindings)
        elif message_type != 3 or self._context is None:
            raise AuthenticationFailed("unexpected NTLM message")
        try:
            answer = self._context.step(token)
        except SpnegoError as exc:
            self._context = None
            raise AuthenticationFailed("NTLM authentication failed") from exc
        if message_type == 3:
            if not self._context.complete:
                raise AuthenticationFailed("NTLM handshake did not complete")
            self.user = self._context.client_principal or "unknown"
            return None
        return answer


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/encrypted") and PROTOCOL.lower() in content_type.lower()


def unseal(context: spnego.ContextProxy, body: bytes) -> bytes:
    """The SOAP message inside one multipart/encrypted body."""
    parts = [p for p in body.split(_BOUNDARY + b"\r\n") if p]
    if len(parts) != 2:
        raise SealingError("expected one header part and one data part")
    header, payload = parts
    length_match = _LENGTH.search(header)
    if PROTOCOL.encode() not in header or not length_match:
        raise SealingError("missing protocol or OriginalContent length")
    if payload.endswith(_BOUNDARY + b"--\r\n"):
        payload = payload[: -len(_BOUNDARY + b"--\r\n")]
    if not payload.startswith(_OCTET_HEADER):
        raise SealingError("missing octet-stream header")
    payload = payload[len(_OCTET_HEADER):]
    if len(payload) < 4:
        raise SealingError("truncated sealed data")
    signature_length = struct.unpack("<I", payload[:4])[0]
    if signature_length != 16 or len(payload) < 4 + signature_length:
        raise SealingError("unexpected signature length")
    try:
        message = context.unwrap(payload[4:]).data
    except SpnegoError as exc:
        raise SealingError("signature check failed") from exc
    if len(message) != int(length_match.group(1)):
        raise SealingError("length does not match OriginalContent")
    return message


def seal(context: spnego.ContextProxy, message: bytes) -> bytes:
    """One SOAP message sealed and framed the way pywinrm's Encryption class parses it."""
    wrapped = context.wrap(message, encrypt=True).data  # 16-byte signature + sealed data
    return (
        _BOUNDARY + b"\r\n"
        + f"\tContent-Type: {PROTOCOL}\r\n".encode()
        + f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message)}\r\n".encode()
        + _BOUNDARY + b"\r\n"
        + _OCTET_HEADER
        + struct.pack("<I", 16) + wrapped
        + _BOUNDARY + b"--\r\n"
    )
