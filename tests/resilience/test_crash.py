"""Crash consistency: SIGKILL the service (its whole process group) mid-load, several times.

Concurrent clients sign through the real API while the service is killed and restarted.
Afterwards every acknowledged signature (a 201 or 200 received) is in the database exactly
once, verifies with ``signer artifact verify``, and the database passes its integrity check
(SQLite ``PRAGMA integrity_check``; PostgreSQL ``amcheck`` over every index and table) and
the consistency queries below (counters, log sizes, log entries of signatures).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signer import trust
from signer.artifact import parse_ref
from signer.client import Client
from signer.errors import SignerError
from signer.operations import verify
from tests.adversarial.builders import new_csr, sign_digest
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, database, init

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

CLIENTS = 4
KILLS = 3
LOAD_SECONDS = (0.6, 1.2)  # load between a (re)start and the next kill
CLI_SAMPLE = 2


@dataclass
class Attempt:
    name: str
    certificate: str
    signature: str
    acked_id: str | None = None
    acked_status: str = ""


@pytest.fixture
def crash_service(issuer: FakeGitHubIssuer, backend: str, tmp_path: Path) -> Iterator[Service]:
    data = tmp_path / "data"
    with database(backend) as url:
        svc = Service(data, init(data, url), issuer.url, database_url=url,
                      env={"SIGNER_RATE_LIMIT": "0"})
        svc.start()
        try:
            yield svc
        finally:
            svc.stop()


class Load:
    """Clients signing distinct artifacts as fast as they can, through every kill."""

    def __init__(self, service: Service, tenant: Tenant) -> None:
        self.service, self.tenant = service, tenant
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(CLIENTS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a client hung"

    def _run(self, n: int) -> None:
        client = Client(self.service.url, self.tenant.api_key, timeout=10)
        i = 0
        while not self.stop.is_set():
            i += 1
            name = f"ghcr.io/crash/c{n}/app{i}"
            digest = hashlib.sha256(name.encode()).hexdigest()
            key, csr = new_csr()
            try:
                leaf = client.issue_certificate(self.tenant.namespace, csr, {})[
                    "certificate_chain"][0]
            except SignerError as exc:
                self._error(exc)
                continue
            signature = sign_digest(key, digest)
            attempt = Attempt(f"{name}@sha256:{digest}", leaf, signature)
            with self.lock:
                self.attempts.append(attempt)
            try:
                stored = client.submit_signature(self.tenant.namespace, attempt.name, leaf,
                                                 signature)
            except SignerError as exc:
                self._error(exc)
                continue
            attempt.acked_id = stored["id"]

    def _error(self, exc: SignerError) -> None:
        with self.lock:
            self.errors.append(f"{type(exc).__name__}: {exc.detail}")
        time.sleep(0.2)


def test_acknowledged_signatures_survive_sigkill(crash_service: Service, backend: str,
                                                 tmp_path: Path) -> None:
    svc = crash_service
    started = time.monotonic()
    tenant = svc.tenant()
    load = Load(svc, tenant)
    load.start()
    rng = random.Random()
    acked_before_kill = []
    try:
        deadline = time.monotonic() + 30
        while not any(a.acked_id for a in list(load.attempts)):  # the load is running
            assert time.monotonic() < deadline, load.errors[:5]
            time.sleep(0.05)
        for _ in range(KILLS):
            time.sleep(rng.uniform(*LOAD_SECONDS))
            acked_before_kill.append(sum(a.acked_id is not None for a in load.attempts))
            svc.stop(signal.SIGKILL)  # the whole process group, mid-request
            time.sleep(0.2)
            svc.start()
        time.sleep(1.0)
    finally:
        load.finish()

    # Unacknowledged uploads are sent again, as a re-run CI job would: each is stored once.
    client = Client(svc.url, tenant.api_key)
    resent = 0
    for attempt in load.attempts:
        if attempt.acked_id is None:
            stored = client.submit_signature(tenant.namespace, attempt.name,
                                             attempt.certificate, attempt.signature)
            attempt.acked_id, resent = stored["id"], resent + 1
    # And an acknowledged one again: the same entry, never a second one.
    first = next(a for a in load.attempts if a.acked_id)
    again = client.submit_signature(tenant.namespace, first.name, first.certificate,
                                    first.signature)
    assert again["id"] == first.acked_id

    acked = [a for a in load.attempts if a.acked_id]
    assert len(acked) >= 10, (len(acked), load.errors[:5])
    assert acked_before_kill[0] > 0, "the first kill came before any load"
    ns = tenant.namespace
    rows = svc.sql(f"SELECT id, name, digest, signature_sha256 FROM signatures "
                   f"WHERE namespace = '{ns}'")
    by_id = {r[0]: r for r in rows}
    for attempt in acked:
        row = by_id.get(attempt.acked_id)
        assert row is not None, f"acknowledged {attempt.acked_id} is missing"
        name, digest = attempt.name.split("@sha256:")
        sig_hash = hashlib.sha256(base64.b64decode(attempt.signature)).hexdigest()
        assert (row[1], row[2], row[3]) == (name, digest, sig_hash)
    assert len(rows) == len({(r[1], r[2], r[3]) for r in rows}), "duplicated signature"
    assert len(rows) == len(acked), "a stored signature that no client sent"

    loaded = time.monotonic()
    _check_integrity(svc, backend)
    _check_consistency(svc)

    # Every acknowledged signature verifies: all in-process, a sample through the CLI.
    material = trust.parse(Client(svc.url).trust_root())
    issuer = f"{svc.url}/auth"
    for attempt in acked:
        report = verify(parse_ref(attempt.name), material, issuer, client=client, namespace=ns)
        assert report.ok, (attempt.name, report.explain())
    (tmp_path / "root.json").write_bytes(Client(svc.url).trust_root())
    for attempt in rng.sample(acked, CLI_SAMPLE):
        done = svc.cli("artifact", "verify", "--name", attempt.name, "--trust-root",
                       str(tmp_path / "root.json"), "--certificate-oidc-issuer", issuer,
                       env={"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": ns})
        assert done.returncode == 0, done.stderr
    print(f"\n{backend}: {KILLS} SIGKILLs, {len(acked)} acknowledged signatures "
          f"({resent} re-sent after a lost answer), {len(load.errors)} client errors, "
          f"all present once and verified; load+kills {loaded - started:.1f} s, checks "
          f"{time.monotonic() - loaded:.1f} s")


def _check_integrity(svc: Service, backend: str) -> None:
    if backend == "sqlite":
        assert svc.sql("PRAGMA integrity_check") == [("ok",)]
        assert svc.sql("PRAGMA foreign_key_check") == []
        return
    import psycopg

    assert svc.database_url is not None
    with psycopg.connect(svc.database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = "
            "i.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE a.amname = 'btree' AND n.nspname = 'public'").fetchall()
        assert indexes
        for (index,) in indexes:
            conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        tables = conn.execute("SELECT c.oid::regclass::text FROM pg_class c JOIN "
                              "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                              "AND n.nspname = 'public'").fetchall()
        for (table,) in tables:
            corrupt = conn.execute("SELECT * FROM verify_heapam(%s::regclass)",
                                   (table,)).fetchall()
            assert corrupt == [], (table, corrupt)


def _check_consistency(svc: Service) -> None:
    # Each artifact's counter equals its signatures.
    assert svc.sql(
        "SELECT a.id FROM artifacts a LEFT JOIN signatures s ON s.artifact_id = a.id "
        "GROUP BY a.id, a.signature_count HAVING count(s.id) <> a.signature_count") == []
    # Append-only logs: a tree's size is its number of entries, with no gap in the indexes.
    trees = dict(svc.sql("SELECT name, size FROM log_trees"))
    entries = {t: (n, m) for t, n, m in svc.sql(
        "SELECT tree, count(*), max(idx) FROM log_entries GROUP BY tree")}
    for tree, size in trees.items():
        count, top = entries.get(tree, (0, -1))
        assert size == count == (top if top is not None else -1) + 1, (tree, size, count, top)
    # Every signature points at its own entry in the signature log.
    assert svc.sql("SELECT count(*) FROM signatures WHERE log_index IS NULL") == [(0,)]
    assert svc.sql(
        "SELECT s.id FROM signatures s LEFT JOIN log_entries e ON e.tree = 'tlog' AND "
        "e.idx = s.log_index WHERE e.idx IS NULL") == []
    assert svc.sql("SELECT log_index FROM signatures GROUP BY log_index "
                   "HAVING count(*) > 1") == []


SIGN_CLIENTS = 32


class SignLoad:
    """32 clients signing distinct artifacts through POST /v1/sign as fast as they can."""

    def __init__(self, svc: Service, tenant: Tenant, prefix: str) -> None:
        self.svc, self.tenant, self.prefix = svc, tenant, prefix
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}  # name → id
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(SIGN_CLIENTS)]
        for thread in self.threads:
            thread.start()

    def _run(self, n: int) -> None:
        client = Client(self.svc.url, self.tenant.api_key, timeout=10)
        i = 0
        while not self.stop.is_set():
            i += 1
            name = f"ghcr.io/{self.prefix}/c{n}/app{i}"
            digest = hashlib.sha256(name.encode()).hexdigest()
            key, csr = new_csr()
            signature = sign_digest(key, digest)
            try:
                stored = client.sign(self.tenant.namespace, f"{name}@sha256:{digest}", csr,
                                     signature, {})
            except SignerError as exc:
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc.detail}")
                time.sleep(0.2)
                continue
            with self.lock:
                self.acked[f"{name}@sha256:{digest}"] = stored["id"]

    def wait_for(self, count: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while len(self.acked) < count:
            assert time.monotonic() < deadline, (len(self.acked), self.errors[:5])
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a client hung"

    def check_stored(self) -> None:
        """Every acknowledged signing is found, the logs are consistent, and a signature
        whose answer was lost may be stored too, never one less than acknowledged."""
        client = Client(self.svc.url, self.tenant.api_key)
        for name, entry_id in self.acked.items():
            assert entry_id in [e["id"] for e in client.entries(self.tenant.namespace, name)], \
                name
        _check_consistency(self.svc)
        stored = self.svc.sql(
            f"SELECT count(*) FROM signatures WHERE namespace = '{self.tenant.namespace}'")
        assert stored[0][0] >= len(self.acked)


def test_one_request_signings_survive_sigkill_mid_batch(crash_service: Service, backend: str
                                                        ) -> None:
    """POST /v1/sign under 32 clients, the service killed while batches commit: every 201 is
    found after the restart, and both logs (CT and signature) stay dense and consistent."""
    svc = crash_service
    load = SignLoad(svc, svc.tenant(), "crash1")
    try:
        load.wait_for(20)
        before = len(load.acked)
        svc.stop(signal.SIGKILL)  # mid-batch: 32 clients keep the sequencer busy
        time.sleep(0.2)
        svc.start()
        time.sleep(1.0)
    finally:
        load.finish()
    assert before > 0 and len(load.acked) > before, (before, len(load.acked), load.errors[:5])
    load.check_stored()
    print(f"\n{backend}: /v1/sign, {SIGN_CLIENTS} clients, {before} acknowledged before the "
          f"kill, {len(load.acked)} in all, all found after the restart; "
          f"{len(load.errors)} client errors")


def test_the_log_sequencer_killed_alone_is_replaced(crash_service: Service, backend: str
                                                    ) -> None:
    """SIGKILL of the sequencer process only, mid-batch: the workers answer 503 for what it
    had not committed (never a 500, never a lost acknowledgement), the server starts a new
    one, and signing goes on."""
    svc = crash_service
    load = SignLoad(svc, svc.tenant(), "crash2")
    try:
        load.wait_for(20)
        old = _sequencer_pid(svc)
        os.kill(old, signal.SIGKILL)  # our own child, by PID
        before = len(load.acked)
        load.wait_for(before + 50)
    finally:
        load.finish()
    new = _sequencer_pid(svc)
    assert new != old
    assert all(e.startswith("Unavailable: ") for e in load.errors), load.errors[:5]
    load.check_stored()
    print(f"\n{backend}: sequencer {old} killed, {new} took over; {len(load.acked)} "
          f"acknowledged signings all found; {len(load.errors)} client errors (503)")


def _sequencer_pid(svc: Service) -> int:
    """The server's child that runs the log sequencer (signer.service.sequencer)."""
    assert svc.process is not None
    for task in Path(f"/proc/{svc.process.pid}/task").iterdir():  # a restart forks elsewhere
        for child in (task / "children").read_text().split():
            if b"signer.service.sequencer" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("the server runs no sequencer process")


def test_while_the_sequencer_restarts_readiness_is_503_and_signing_waits(
        crash_service: Service, backend: str) -> None:
    """Between a sequencer's death and its successor's start, /readyz answers 503 (a load
    balancer sends the traffic elsewhere), and a signing that comes anyway waits for the new
    sequencer instead of failing."""
    svc = crash_service
    tenant = svc.tenant()
    os.kill(_sequencer_pid(svc), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (ready := svc.get("/readyz")).status_code == 200:
        assert time.monotonic() < deadline, "readiness never noticed the sequencer was gone"
        time.sleep(0.005)
    assert ready.status_code == 503 and "sequencer" in ready.json()["detail"], ready.text
    digest = hashlib.sha256(b"during the restart").hexdigest()
    key, csr = new_csr()
    signature = sign_digest(key, digest)
    started = time.monotonic()
    signed = svc.post("/v1/sign", tenant.api_key, json={  # no client retry: one request
        "namespace": tenant.namespace, "name": f"ghcr.io/restart/app@sha256:{digest}",
        "csr": csr, "signature": signature, "provenance": {}})
    assert signed.status_code == 201, signed.text
    assert svc.get("/readyz").status_code == 200
    print(f"\n{backend}: readiness 503 seen; the signing waited "
          f"{time.monotonic() - started:.2f} s for the new sequencer")
