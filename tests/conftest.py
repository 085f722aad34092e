"""Fixtures shared by every test: the real Samba AD DC of the test lab.

The test lab lives in $HOMEBOUND_TEST_LAB_DIR (default: .lab-test in the
checkout) and is reused across runs and between concurrent pytest processes
(a file lock serialises provisioning). Each test that writes to the directory
gets its own organisational unit, removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from events.amqp import AmqpSettings
from events.testing import temporary_vhost
from lab.ports import port_is_free
from lab.samba import SambaDC, SambaSettings

REPO = Path(__file__).resolve().parent.parent


def lab_dir_for_tests() -> Path:
    return Path(os.environ.get("HOMEBOUND_TEST_LAB_DIR", REPO / ".lab-test"))


@pytest.fixture
def broker() -> Iterator[AmqpSettings]:
    """A fresh vhost on the real RabbitMQ ($HOMEBOUND_AMQP_URL) for one test."""
    with temporary_vhost() as settings:
        yield settings


@pytest.fixture(scope="session")
def samba() -> Iterator[SambaDC]:
    """The test lab's Samba AD DC, started for this session and stopped after it.

    Only one Samba can listen on 127.0.0.1; stopping it at the end keeps
    `make demo` (which runs its own) free to start. Set HOMEBOUND_KEEP_TEST_LAB=1
    to keep it between runs (saves the five seconds of start-up).
    """
    if shutil.which("samba") is None:
        pytest.fail("Samba is not installed: run `apt-get install -y samba ldb-tools winbind` (.ci/run does)")
    dc = SambaDC(lab_dir_for_tests())
    started_here = dc.process.pid() is None
    if started_here and not port_is_free("127.0.0.1", 636):
        pytest.fail("127.0.0.1:636 is taken by another lab's Samba (the demo's?): "
                    "stop it with `homebound lab down --dir .lab`, then run the tests again")
    dc.ensure_running()
    yield dc
    if started_here and not os.environ.get("HOMEBOUND_KEEP_TEST_LAB"):
        dc.stop()


@pytest.fixture(scope="session")
def samba_settings(samba: SambaDC) -> SambaSettings:
    return samba.settings


@pytest.fixture
def test_ou(samba: SambaDC) -> Iterator[str]:
    """A fresh OU for one test, deleted with everything in it afterwards."""
    ou = f"OU=test-{uuid.uuid4().hex[:10]},{samba.settings.base_dn}"
    with samba.connect() as conn:
        conn.add(ou, ["top", "organizationalUnit"])
    yield ou
    with samba.connect() as conn:
        conn.delete(ou, controls=[("1.2.840.113556.1.4.805", True, None)])  # tree delete


def ldap_entries(conn: ldap3.Connection) -> list[dict[str, object]]:
    """The real entries of the last search (Samba adds referral entries)."""
    return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
