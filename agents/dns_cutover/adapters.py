"""The DNS port over dnspython: RFC 2136 updates signed with TSIG, direct queries.

The only module that touches dnspython. Reads go straight to the primary
server (not through a cache), signed with the same key, so the records
recorded as the rollback source are known to come from that server; UDP
first, TCP when the answer is truncated. Updates go over TCP as one message
per domain, so a domain's edits land together or not at all, and each edit
carries the RRset as read as its prerequisite (RFC 2136 §2.4.2, "RRset
exists, value dependent"): if anyone changed those records in between, the
server answers NXRRSET and nothing is written.

The TSIG secret lives only inside a `dns.tsig.Key`, whose repr shows it:
that object is never logged, formatted or put in an exception message.
"""

from __future__ import annotations

import binascii
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from agents.dns_cutover.ports import (
    DnsConflict,
    DnsRejected,
    DnsUnavailable,
    DomainChange,
    DomainRecords,
    Observed,
    Rrset,
    RrsetEdit,
    autodiscover_name,
)
from agents.runtime.config import DnsSection

__all__ = ["TsigDnsServer"]

IN = dns.rdataclass.IN
_CONFLICTS = {
    dns.rcode.NXRRSET: "records changed since they were read",
    dns.rcode.YXRRSET: "records appeared since they were read",
    dns.rcode.NXDOMAIN: "a name that was read has gone",
}


class TsigDnsServer:
    """One authoritative primary that accepts updates signed with one TSIG key."""

    def __init__(self, *, server: str, port: int, key_name: str, algorithm: str, secret: str,
                 timeout: float = 5.0) -> None:
        self._server = server
        self._port = port
        self._timeout = timeout
        self._key_name = key_name
        self._algorithm = algorithm
        try:
            self._key = dns.tsig.Key(key_name, secret, algorithm)
        except (binascii.Error, ValueError, dns.exception.DNSException):
            # the error text could quote the secret: say only what is wrong with it
            raise DnsRejected(f"the TSIG secret for key {key_name!r} is not valid base64") from None
        self._zones: dict[str, str] = {}

    @classmethod
    def from_config(cls, section: DnsSection) -> TsigDnsServer:
        if section.tsig_secret is None:
            raise DnsRejected("no TSIG secret: set HOMEBOUND_DNS_TSIG_SECRET_FILE or [dns] tsig_secret_file")
        return cls(server=section.server, port=section.port, key_name=section.tsig_key_name,
                   algorithm=section.tsig_algorithm, secret=section.tsig_secret.get_secret_value(),
                   timeout=section.timeout_seconds)

    def __repr__(self) -> str:
        return f"TsigDnsServer({self._server}:{self._port}, key={self._key_name})"

    @property
    def where(self) -> str:
        return f"{self._server}:{self._port}"

    # ------------------------------------------------------------------ the port

    def read(self, domain: str) -> DomainRecords:
        return DomainRecords(
            domain=domain,
            mx=self._rrset(domain, dns.rdatatype.MX),
            txt=self._rrset(domain, dns.rdatatype.TXT),
            autodiscover=self._rrset(autodiscover_name(domain), dns.rdatatype.CNAME),
        )

    def apply(self, change: DomainChange) -> None:
        if change.is_empty:
            return
        zone = self.zone_for(change.domain)
        update = dns.update.UpdateMessage(zone, keyring=self._key)
        for edit in change.edits:
            _add_edit(update, edit)
        what = f"update of zone {zone} on {self.where}"
        with self._errors(what):
            response = dns.query.tcp(update, _address(self._server), port=self._port,
                                     timeout=self._timeout)
        self._check_update(response, zone, what)

    def observe(self, domain: str, resolver: str | None = None) -> Observed:
        if resolver is None:
            records = self.read(domain)
            mx, ttl, target = records.mx_hosts, records.mx.ttl, records.autodiscover_target
        else:
            host, port = _split_resolver(resolver)
            answer = self._rrset(domain, dns.rdatatype.MX, where=(host, port))
            cname = self._rrset(autodiscover_name(domain), dns.rdatatype.CNAME, where=(host, port))
            probe = DomainRecords(domain, mx=answer, autodiscover=cname)
            mx, ttl, target = probe.mx_hosts, answer.ttl, probe.autodiscover_target
        return Observed(where=resolver or self.where, mx=frozenset(mx), mx_ttl=ttl if mx else None,
                        autodiscover=target)

    # ------------------------------------------------------------------ beyond the port

    def zone_for(self, domain: str) -> str:
        """The zone holding *domain*: itself when it has a SOA, else the SOA's owner in the authority."""
        if domain not in self._zones:
            response = self._ask(domain, dns.rdatatype.SOA, allow_nxdomain=True)
            soa = next((rrset for section in (response.answer, response.authority) for rrset in section
                        if rrset.rdtype == dns.rdatatype.SOA), None)
            if soa is None:
                raise DnsRejected(f"{self.where} is not authoritative for {domain} (no SOA in its answer)")
            self._zones[domain] = soa.name.to_text(omit_final_dot=True).lower()
        return self._zones[domain]

    def probe(self, name: str | None = None) -> str:
        """Prove the server answers and accepts the key, without changing anything.

        A signed SOA query shows the key is known (a wrong secret fails the
        signature); an update whose only content is an unmet prerequisite
        shows the key may update the zone: NXDOMAIN means "allowed, and the
        prerequisite failed", REFUSED means "not allowed".
        """
        if name is None:
            self._ask(".", dns.rdatatype.SOA, allow_refused=True)
            return f"{self.where} answered a query signed with {self._key_name} ({self._algorithm})"
        zone = self.zone_for(name)
        soa = self._ask(zone, dns.rdatatype.SOA)
        serial = next((rdata.serial for rrset in soa.answer for rdata in rrset
                       if rrset.rdtype == dns.rdatatype.SOA), "?")
        update = dns.update.UpdateMessage(zone, keyring=self._key)
        update.present(f"_homebound-probe.{zone}.")
        with self._errors(f"probe update of {zone}"):
            response = dns.query.tcp(update, _address(self._server), port=self._port, timeout=self._timeout)
        rcode = response.rcode()
        where = f"{self.where}, key {self._key_name} ({self._algorithm}), zone {zone} serial {serial}"
        if rcode != dns.rcode.NXDOMAIN:
            raise DnsRejected(f"{where}: updates NOT allowed ({dns.rcode.to_text(rcode)})")
        return f"{where}: updates allowed"

    # ------------------------------------------------------------------ queries

    def _rrset(self, name: str, rdtype: dns.rdatatype.RdataType,
               where: tuple[str, int] | None = None) -> Rrset:
        response = self._ask(name, rdtype, where=where, allow_nxdomain=True)
        found = response.get_rrset(response.answer, dns.name.from_text(name), IN, rdtype)
        if found is None:
            return Rrset()
        pairs = sorted((rdata.to_text(), _joined(rdata)) for rdata in found)
        texts = tuple(text for _, text in pairs) if rdtype == dns.rdatatype.TXT else ()
        return Rrset(ttl=found.ttl, records=tuple(record for record, _ in pairs), texts=texts)

    def _ask(self, name: str, rdtype: dns.rdatatype.RdataType, *, where: tuple[str, int] | None = None,
             allow_nxdomain: bool = False, allow_refused: bool = False) -> dns.message.Message:
        """One query: to the primary signed and without recursion, to a resolver plainly."""
        query = dns.message.make_query(name, rdtype)
        if where is None:
            query.flags &= ~dns.flags.RD
            query.use_tsig(self._key)
            host, port = self._server, self._port
        else:
            host, port = where
        what = f"{dns.rdatatype.to_text(rdtype)} {name} from {host}:{port}"
        with self._errors(what):
            response, _used_tcp = dns.query.udp_with_fallback(query, _address(host), port=port,
                                                              timeout=self._timeout)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR or (rcode == dns.rcode.NXDOMAIN and allow_nxdomain):
            return response
        if rcode == dns.rcode.REFUSED and allow_refused:
            return response
        if rcode == dns.rcode.SERVFAIL:
            raise DnsUnavailable(f"{what}: SERVFAIL")
        raise DnsRejected(f"{what}: {dns.rcode.to_text(rcode)}")

    def _check_update(self, response: dns.message.Message, zone: str, what: str) -> None:
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        if rcode in _CONFLICTS:
            raise DnsConflict(f"{what} not applied: {_CONFLICTS[rcode]} ({dns.rcode.to_text(rcode)})")
        if rcode == dns.rcode.YXDOMAIN:  # only our "name unused" prerequisite for a new CNAME
            raise DnsRejected(f"{what} not applied: autodiscover already holds other records (A, SRV...) "
                              "and a CNAME cannot be added beside them; point it on-prem by hand")
        if rcode == dns.rcode.SERVFAIL:
            raise DnsUnavailable(f"{what}: SERVFAIL")
        if rcode == dns.rcode.REFUSED:
            raise DnsRejected(f"{what} REFUSED: key {self._key_name} is not allowed to update {zone} "
                              "(allow-update / update-policy)")
        if rcode == dns.rcode.NOTAUTH:
            raise DnsRejected(f"{what}: NOTAUTH: the server is not the primary for {zone} "
                              f"or does not accept key {self._key_name}")
        raise DnsRejected(f"{what}: {dns.rcode.to_text(rcode)}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """dnspython and socket errors as the port's: transient or refused, the secret never quoted."""
        try:
            yield
        except dns.exception.Timeout:
            raise DnsUnavailable(f"{what}: no answer within {self._timeout:g} s") from None
        except dns.tsig.PeerBadKey:
            raise DnsRejected(f"{what}: the server does not know TSIG key {self._key_name}") from None
        except (dns.tsig.PeerBadSignature, dns.tsig.BadSignature):
            raise DnsRejected(f"{what}: TSIG signature rejected: the secret of key {self._key_name} "
                              "does not match the server's") from None
        except dns.tsig.PeerBadTime:
            raise DnsRejected(f"{what}: TSIG time check failed: this machine's clock and the "
                              "server's differ by more than the allowed fudge") from None
        except dns.tsig.PeerError as exc:
            raise DnsRejected(f"{what}: TSIG error {type(exc).__name__}") from None
        except (OSError, EOFError) as exc:
            raise DnsUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None


def _add_edit(update: dns.update.UpdateMessage, edit: RrsetEdit) -> None:
    name = dns.name.from_text(edit.name)
    rdtype = dns.rdatatype.from_text(edit.rdtype)
    if edit.expected.records:
        expected = dns.rdataset.from_text_list(IN, rdtype, 0, list(edit.expected.records))
        update.present(name, expected)
    elif rdtype == dns.rdatatype.CNAME:
        update.absent(name)  # a CNAME must be alone: require the name unused, or it is silently ignored
    else:
        update.absent(name, rdtype)
    for record in edit.remove:
        update.delete(name, dns.rdata.from_text(IN, rdtype, record))
    if edit.add:
        update.add(name, dns.rdataset.from_text_list(IN, rdtype, edit.ttl, list(edit.add)))


def _joined(rdata: dns.rdata.Rdata) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is None:
        return ""
    return b"".join(strings).decode("utf-8", errors="replace")


def _split_resolver(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def _address(host: str) -> str:
    """dnspython needs an address: resolve a host name once per call (servers rarely move)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0])
    except OSError as exc:
        raise DnsUnavailable(f"cannot resolve the DNS server name {host}: {exc}") from None
