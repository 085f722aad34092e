"""SPF as receivers judge it (RFC 7208): what the cutover may publish and what it must refuse."""

from __future__ import annotations

import pytest

from agents.dns_cutover import spf
from agents.dns_cutover.spf import SpfError

EXO = "include:spf.protection.outlook.com"


@pytest.mark.parametrize(("record", "lookups"), [
    ("v=spf1 -all", 0),
    ("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", 0),
    (f"v=spf1 {EXO} -all", 1),
    ("v=spf1 a mx ptr -all", 3),
    ("v=spf1 a:mail.fabrikam.example mx:fabrikam.example/24 exists:%{i}._spf.fabrikam.example -all", 3),
    ("v=spf1 redirect=_spf.fabrikam.example", 1),
    ("v=spf1 ip4:192.0.2.1 exp=explain.fabrikam.example -all", 0),  # exp is fetched only on failure
    ("v=spf1 include:a.example include:b.example ?all", 2),
    ("V=SPF1 INCLUDE:a.example MX -ALL", 2),
])
def test_lookup_terms_are_counted_as_rfc_7208_counts_them(record: str, lookups: int) -> None:
    assert spf.parse(record).lookup_count == lookups


def _with_lookups(count: int, *, tail: str = "-all") -> str:
    return "v=spf1 " + " ".join(f"include:s{i}.example" for i in range(count)) + f" {tail}"


def test_ten_lookups_are_allowed() -> None:
    record = spf.parse(_with_lookups(10))
    assert record.check_lookups() is record


def test_eleven_lookups_are_refused_with_the_count_and_the_terms() -> None:
    with pytest.raises(SpfError, match=r"11 DNS lookups, more than the 10") as caught:
        spf.parse(_with_lookups(10, tail="mx -all")).check_lookups()
    assert "include:s0.example" in caught.value.reason
    assert caught.value.reason.endswith("include:s9.example mx")


def test_adding_exchange_online_to_a_record_at_the_limit_is_refused() -> None:
    record = spf.parse("v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(8)) + " -all")
    with pytest.raises(SpfError, match="11 DNS lookups"):
        spf.authorise(record, ["192.0.2.25"]).check_lookups()


@pytest.mark.parametrize(("record", "addresses", "expected"), [
    (f"v=spf1 {EXO} -all", ["192.0.2.25"], f"v=spf1 ip4:192.0.2.25 {EXO} -all"),
    (f"v=spf1 {EXO} -all", ["2001:db8::25"], f"v=spf1 ip6:2001:db8::25 {EXO} -all"),
    ("v=spf1 mx ~all", ["192.0.2.25"], f"v=spf1 ip4:192.0.2.25 {EXO} mx ~all"),
    (f"v=spf1 ip4:192.0.2.0/24 {EXO} -all", ["192.0.2.25"], f"v=spf1 ip4:192.0.2.0/24 {EXO} -all"),
    (f"v=spf1 {EXO} foo=bar -all", ["192.0.2.25"], f"v=spf1 ip4:192.0.2.25 {EXO} foo=bar -all"),
    (f"v=spf1 {EXO} redirect=_spf.fabrikam.example", ["192.0.2.25"],
     f"v=spf1 ip4:192.0.2.25 {EXO} redirect=_spf.fabrikam.example"),
])
def test_the_gateway_and_exchange_online_are_authorised_ahead_of_the_rest(
    record: str, addresses: list[str], expected: str
) -> None:
    assert str(spf.authorise(spf.parse(record), addresses)) == expected


def test_authorising_twice_changes_nothing_the_second_time() -> None:
    once = spf.authorise(spf.parse("v=spf1 mx -all"), ["192.0.2.25", "2001:db8::25"])
    twice = spf.authorise(spf.parse(str(once)), ["192.0.2.25", "2001:db8::25"])
    assert twice == spf.parse(str(once))
    assert str(twice).count("ip4:192.0.2.25") == 1


def test_the_include_can_be_left_out_for_tenants_that_relay_elsewhere() -> None:
    record = spf.authorise(spf.parse("v=spf1 mx -all"), ["192.0.2.25"], include=None)
    assert str(record) == "v=spf1 ip4:192.0.2.25 mx -all"


def test_a_gateway_the_record_explicitly_denies_is_not_silently_allowed() -> None:
    with pytest.raises(SpfError, match=r"explicitly denies the gateway address 192\.0\.2\.25"):
        spf.authorise(spf.parse(f"v=spf1 -ip4:192.0.2.0/24 {EXO} -all"), ["192.0.2.25"])


@pytest.mark.parametrize(("record", "reason"), [
    ("v=spf1 ipv4:192.0.2.25 -all", r"unknown mechanism 'ipv4' \(did you mean ip4:192.0.2.25\?\)"),
    ("v=spf1 ipv6:2001:db8::1 -all", r"did you mean ip6:2001:db8::1"),
    ("v=spf1 ip4:192.0.2.300 -all", "not a valid ip4 address"),
    ("v=spf1 ip4:2001:db8::1 -all", "not a valid ip4 address"),
    ("v=spf1 include -all", "include needs a domain"),
    ("v=spf1 -all:x", "`all` takes no argument"),
    ("v=spf1 redirect=a.example redirect=b.example", "redirect= modifier appears more than once"),
    ("v=spf2 mx -all", "not an SPF record"),
    ("v=spf1 mx -all \u00e9", "printable ASCII"),
])
def test_records_receivers_reject_are_refused_with_a_reason(record: str, reason: str) -> None:
    with pytest.raises(SpfError, match=reason):
        spf.parse(record)


def test_two_spf_records_on_one_name_are_refused() -> None:
    with pytest.raises(SpfError, match="2 SPF records on one name"):
        spf.select_spf(["v=spf1 mx -all", "google-site-verification=abc", f"v=spf1 {EXO} -all"])


def test_other_txt_records_are_not_taken_for_spf() -> None:
    values = ["google-site-verification=abc", "v=spf10 nonsense", f"v=spf1 {EXO} -all"]
    assert spf.select_spf(values) == f"v=spf1 {EXO} -all"
    assert spf.select_spf(["MS=ms12345"]) is None


def test_unknown_modifiers_are_kept_as_written() -> None:
    record = spf.parse(f"v=spf1 {EXO} x-Vendor=Some.Value -all")
    assert str(record) == f"v=spf1 {EXO} x-Vendor=Some.Value -all"
    assert record.lookup_count == 1


def test_long_records_are_split_into_txt_strings_of_at_most_255_octets() -> None:
    text = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(20)) + " -all"
    chunks = spf.txt_presentation(text).split('" "')
    assert len(text) > 255 and len(chunks) == 2
    assert max(len(chunk.strip('"')) for chunk in chunks) == 255
