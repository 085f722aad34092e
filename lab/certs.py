"""One lab certificate authority and a server certificate that every lab server uses.

The certificate names 127.0.0.1 and localhost (plus any host names asked for),
so clients verify TLS against `ca.pem` with no verification switched off.
The CA's key is kept (mode 0600) so a later call asking for another host name
reissues the server certificate under the same CA: servers already running
keep a certificate their clients still trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509

from lab.files import write_private

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
    ca_key_file = directory / "ca.key"
    wanted = dict.fromkeys([*DEFAULT_NAMES, *extra_names])
    if all(p.exists() for p in (certs.ca_file, certs.cert_file, certs.key_file)):
        present = _names_in(certs.cert_file)
        if set(wanted) <= present or not ca_key_file.exists():
            return certs  # complete, or made before the CA key was kept: nothing can be added
        ca = trustme.CA.from_pem(certs.ca_file.read_bytes(), ca_key_file.read_bytes())
        wanted = dict.fromkeys([*wanted, *sorted(present - set(wanted))])
    else:
        ca = trustme.CA(organization_name="Homebound lab", organization_unit_name="lab CA")
        ca.cert_pem.write_to_path(str(certs.ca_file))
        write_private(ca_key_file, ca.private_key_pem.bytes())
    server = ca.issue_cert(*wanted)
    with open(certs.cert_file, "wb") as chain:
        for blob in server.cert_chain_pems:
            chain.write(blob.bytes())
    write_private(certs.key_file, server.private_key_pem.bytes())
    return certs


def _names_in(cert_file: Path) -> set[str]:
    """The DNS names and IP addresses the server certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in san}
