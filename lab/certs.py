"""One lab certificate authority and a server certificate that every lab server uses.

The certificate names 127.0.0.1 and localhost (plus any host names asked for),
so clients verify TLS against `ca.pem` with no verification switched off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["LabCertificates", "ensure_certificates"]

DEFAULT_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class LabCertificates:
    ca_file: Path
    cert_file: Path  # server certificate followed by the CA (a chain)
    key_file: Path  # private key, mode 0600


def ensure_certificates(directory: Path, extra_names: tuple[str, ...] = ()) -> LabCertificates:
    """Create the CA and server certificate in *directory* unless they exist."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = LabCertificates(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    if all(p.exists() for p in (certs.ca_file, certs.cert_file, certs.key_file)):
        return certs
    ca = trustme.CA(organization_name="Homebound lab", organization_unit_name="lab CA")
    server = ca.issue_cert(*DEFAULT_NAMES, *extra_names)
    ca.cert_pem.write_to_path(str(certs.ca_file))
    with open(certs.cert_file, "wb") as chain:
        for blob in server.cert_chain_pems:
            chain.write(blob.bytes())
    fd = os.open(certs.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key:
        key.write(server.private_key_pem.bytes())
    return certs
