"""Log lines carry per-message context and never a secret."""

from __future__ import annotations

import io
import json

import structlog

from agents.runtime.logging import configure_logging


def test_secrets_are_redacted_at_any_depth_and_in_free_text() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("t")
    with structlog.contextvars.bound_contextvars(wave_id="w-1", mailbox_id="m-1", event_id="e-1"):
        log.info("connecting", password="hunter2", headers={"Authorization": "Bearer abc.def.ghi"},
                 nested={"unicodePwd": b"x", "ok": "visible"},
                 detail="login failed for amqp://agent:s3cr3t@broker/ with token=abcdef123",
                 error="HTTP 401 after sending Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig")
    line = json.loads(out.getvalue().strip())
    assert line["wave_id"] == "w-1" and line["mailbox_id"] == "m-1" and line["event_id"] == "e-1"
    assert line["password"] == "***"
    assert line["headers"]["Authorization"] == "***"
    assert line["nested"] == {"unicodePwd": "***", "ok": "visible"}
    text = out.getvalue()
    for secret in ("hunter2", "abc.def.ghi", "s3cr3t", "abcdef123", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in text
    assert "amqp://agent:***@broker/" in line["detail"]
