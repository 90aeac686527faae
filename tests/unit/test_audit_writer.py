"""The audit writer: whole lines under PIPE_BUF, sane request ids, failures that say so."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signer.errors import Unavailable, UsageError
from signer.service import audit
from signer.service.audit import MAX_LINE_BYTES, Audit


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_command_line_names_the_local_user_and_no_request(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    Audit.for_command(str(path)).rotated("ca", "intermediate.key", "intermediate-1.key",
                                         datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    (line,) = lines(path)
    assert list(line)[:4] == ["time", "event", "request_id", "principal"]
    assert line["event"] == "key_rotated" and line["request_id"] is None
    assert line["principal"].startswith(("local:", "local:uid:"))
    assert line["active_from"] == "2026-12-01T12:00:00.000Z"
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_appends_and_never_truncates(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event":"earlier"}\n')
    Audit.open(str(path)).admin("namespace.create", "acme")
    assert [line["event"] for line in lines(path)] == ["earlier", "admin_change"]


def test_a_huge_line_is_cut_under_pipe_buf(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    claims = {f"{i:02d}" + "k" * 1000: "v" * 1000 for i in range(16)}
    Audit.open(str(path)).admin("policy.add", "acme", claims=claims)
    raw = path.read_bytes()
    assert len(raw) < MAX_LINE_BYTES and raw.endswith(b"\n") and raw.count(b"\n") == 1
    (line,) = lines(path)
    assert line["truncated"] is True and len(line["target"]["claims"]) == 16


def test_an_unopenable_destination_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"audit log .* cannot be opened"):
        Audit.open(str(tmp_path / "missing-dir" / "audit.jsonl"))


def test_a_failed_write_refuses_the_decision() -> None:
    def full(_line: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(Unavailable, match="audit log cannot be written"):
        Audit(full).admin("namespace.create", "acme")


def test_the_default_is_the_service_log_stream(caplog: pytest.LogCaptureFixture) -> None:
    writer = Audit.open(None)
    logger = logging.getLogger(audit.LOGGER)
    logger.propagate = True  # let pytest see it
    try:
        with caplog.at_level(logging.INFO, logger=audit.LOGGER):
            writer.admin("namespace.create", "acme")
    finally:
        logger.propagate = False
    records = [r for r in caplog.records if r.name == audit.LOGGER]
    assert records, "the audit line reached the service's log stream"
    assert json.loads(records[-1].getMessage())["action"] == "namespace.create"


@pytest.mark.parametrize(("given", "kept"), [
    ("proxy-req-0001", True), ("a" * 128, True), ("short", False), ("a" * 129, False),
    ("bad id with spaces", False), ("evil\nline-injected", False), ("", False)])
def test_an_incoming_request_id_is_kept_only_when_sane(given: str, kept: bool) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["id"] = audit.current_request_id()
        await send({"type": "http.response.start", "status": 204, "headers": []})

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            seen["header"] = dict(message["headers"])[b"x-request-id"].decode()

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/x",
             "headers": [(b"x-request-id", given.encode())]}
    # A thread of its own: a test before this one may have left an event loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run,
                    audit.RequestIds(app, Audit(lambda _line: None))(scope, receive, send)
                    ).result()
    assert seen["id"] == seen["header"]
    assert (seen["id"] == given) is kept
    assert audit.current_request_id() is None  # reset after the request
