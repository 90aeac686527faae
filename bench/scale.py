"""Lookup latency as the store grows: 1 k, 100 k and (optionally) 1 M stored signatures.

One real signature is made through the service; its row (and its artifact's) is the template
for the bulk load, which copies it with new ids, names and digests straight into the
database with ``executemany`` (one artifact per signature, every row as large as a real
one). Tables are reflected from the live database, so the load follows whatever the schema
is at the time. After each size is reached, one client times, sequentially over loopback:

- ``GET /v1/entries`` for a name picked at random among all stored ones (what ``signer
  artifact verify`` and the verify action ask), and
- ``GET /v1/signatures?limit=20`` (the newest signatures of the namespace, ``signer
  artifact list``).

No ANALYZE or VACUUM is run by hand: PostgreSQL's autovacuum does what it does by itself.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from bench.stack import Stack, running
from bench.timing import percentile
from signer import operations
from signer.artifact import ArtifactRef
from signer.client import Client
from signer.service.database import database_url
from tests.fakes.github_oidc import FakeGitHubIssuer

CHUNK = 5_000
# Each size's lookups stop after this long even if fewer than the requested number ran: a
# lookup that scans the table would otherwise take the run hostage at 1 M rows.
LOOKUP_BUDGET_SECONDS = 60.0
MIN_LOOKUPS = 10


@dataclass(frozen=True)
class ScaleRow:
    backend: str
    stored: int
    load_seconds: float  # to reach this size from the previous one
    entries_p50_ms: float
    entries_p95_ms: float
    list_p50_ms: float
    list_p95_ms: float
    lookups: int  # requests timed for each of the two


def measure(issuer: FakeGitHubIssuer, backend: str, sizes: list[int], requests: int,
            workdir: Path, log: Callable[[str], None] = lambda _: None) -> list[ScaleRow]:
    rows: list[ScaleRow] = []
    with running(issuer, backend, 1) as stack:
        token = stack.tokens(1)[0]
        client = Client(stack.service.url, token)
        ref = ArtifactRef("ghcr.io/bench/template", hashlib.sha256(b"template").hexdigest())
        signed = operations.sign(client, stack.tenant.namespace, ref, {},
                                 workdir / f"template-{backend}.sigstore.json")
        engine = sa.create_engine(database_url(stack.database_url, stack.service.data_dir))
        try:
            loader = _Loader(engine, signed.id)
            for size in sizes:
                started = time.perf_counter()
                loader.load_to(size)
                load_seconds = time.perf_counter() - started
                log(f"  {loader.stored:,} stored (loaded in {load_seconds:.0f} s); timing lookups")
                entries, listing = _time_lookups(stack, token, loader, requests)
                rows.append(ScaleRow(backend, loader.stored, load_seconds,
                                     percentile(entries, 50) * 1000,
                                     percentile(entries, 95) * 1000,
                                     percentile(listing, 50) * 1000,
                                     percentile(listing, 95) * 1000, len(entries)))
                log(f"  {loader.stored:,}: entries p50 {rows[-1].entries_p50_ms:.1f} ms, "
                    f"list p50 {rows[-1].list_p50_ms:.1f} ms ({len(entries)} lookups)")
        finally:
            engine.dispose()
    return rows


class _Loader:
    def __init__(self, engine: sa.Engine, template_id: str) -> None:
        self.engine = engine
        meta = sa.MetaData()
        self.signatures = sa.Table("signatures", meta, autoload_with=engine)
        self.artifacts = sa.Table("artifacts", meta, autoload_with=engine)
        with engine.connect() as conn:
            self.signature = dict(conn.execute(sa.select(self.signatures).where(
                self.signatures.c.id == template_id)).one()._mapping)
            self.artifact = dict(conn.execute(sa.select(self.artifacts).where(
                self.artifacts.c.id == self.signature["artifact_id"])).one()._mapping)
        self.stored = 1
        self.names: list[str] = [f"{self.signature['name']}@sha256:{self.signature['digest']}"]
        self.epoch = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=365)

    def load_to(self, size: int) -> None:
        while self.stored < size:
            count = min(CHUNK, size - self.stored)
            artifacts: list[dict[str, Any]] = []
            signatures: list[dict[str, Any]] = []
            for i in range(self.stored, self.stored + count):
                name = f"ghcr.io/bulk/app{i % 1000}/image{i}"
                digest = hashlib.sha256(f"bulk {i}".encode()).hexdigest()
                at = self.epoch + timedelta(seconds=i * 30)
                artifact_id, signature_id = f"a{i:031x}", f"s{i:031x}"
                artifacts.append({**self.artifact, "id": artifact_id, "name": name,
                                  "digest": digest, "created_at": at, "updated_at": at})
                signatures.append({
                    **self.signature, "id": signature_id, "artifact_id": artifact_id,
                    "name": name, "digest": digest, "created_at": at, "signed_at": at,
                    "signature_sha256": hashlib.sha256(f"sig {i}".encode()).hexdigest()})
                if i % 50 == 0:
                    self.names.append(f"{name}@sha256:{digest}")
            with self.engine.begin() as conn:
                conn.execute(self.artifacts.insert(), artifacts)
                conn.execute(self.signatures.insert(), signatures)
            self.stored += count


def _time_lookups(stack: Stack, token: str, loader: _Loader, requests: int
                  ) -> tuple[list[float], list[float]]:
    namespace = quote(stack.tenant.namespace)
    rng = random.Random(5)
    conn = http.client.HTTPConnection("127.0.0.1", stack.service.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}

    def timed(path: str) -> float:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return elapsed

    def entries() -> float:
        name = quote(rng.choice(loader.names), safe="")
        return timed(f"/v1/entries?namespace={namespace}&name={name}")

    def listing() -> float:
        return timed(f"/v1/signatures?namespace={namespace}&limit=20")

    def bounded(measure: Callable[[], float]) -> list[float]:
        deadline = time.monotonic() + LOOKUP_BUDGET_SECONDS
        times: list[float] = []
        while len(times) < requests and (len(times) < MIN_LOOKUPS
                                          or time.monotonic() < deadline):
            times.append(measure())
        return times

    try:
        for _ in range(3):  # warm: connection, caches
            entries()
            listing()
        return bounded(entries), bounded(listing)
    finally:
        conn.close()
