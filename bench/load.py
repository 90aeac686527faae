"""The load generator: complete signings (and lookups) through HTTP, from client processes.

A *cell* is one measurement: a number of concurrent clients against one service for a fixed
time. Each client is a thread with its own keep-alive HTTP connection (stdlib
``http.client``: it costs about a fifth of the CPU per request that ``requests`` does, which
matters with the generator on the same two cores as the service), spread over a few
generator processes so that the generator's own GIL is not the bottleneck.

Everything a client can do before the clock starts it does before: the OIDC tokens are
minted by the fake issuer beforehand, and each process prepares a pool of (key, CSR,
digest, signature) — a signature over a digest does not depend on the certificate, so the
client signs before it asks for one. During the cell a client only talks HTTP: ``sign`` is
one ``POST /v1/sign`` → 201 with the bundle (what the CLI and the actions do); ``sign2`` is
the two-step API, ``POST /v1/certificates`` → leaf → ``POST /v1/signatures`` → 201, whose
latency runs from the first byte out to the second answer in; ``bare`` is one ``POST /`` to
the bare ceiling (bench/bare.py).
Names are unique per signing, so every signing is a new entry (no idempotent shortcut).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from urllib.parse import quote, urlsplit

from bench.stack import group_cpu_seconds, machine_busy_seconds
from bench.timing import percentile

GENERATOR_PROCESSES = 2
POOL_PER_PROCESS = 256
REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Job:
    """What one generator process runs: ``threads`` clients, from ``start_at`` (epoch s)."""

    kind: str  # "sign", "sign2", "bare" or "lookup"
    urls: tuple[str, ...]  # clients alternate between them (replicas), one per client
    namespace: str
    tokens: tuple[str, ...]  # one per thread
    start_at: float
    warmup: float
    duration: float
    label: str
    names: tuple[str, ...] = ()  # lookups: name@sha256:digest to look up


@dataclass
class JobResult:
    latencies: list[float] = field(default_factory=list)  # seconds, in the measured window
    completed: int = 0
    errors: int = 0
    error_sample: str = ""
    cpu_seconds: float = 0.0  # this generator process, during the measured window
    names: list[str] = field(default_factory=list)  # a sample of signed names


@dataclass(frozen=True)
class CellResult:
    kind: str
    clients: int
    duration: float
    latencies: tuple[float, ...]
    completed: int
    errors: int
    error_sample: str
    generator_cpu_seconds: float
    names: tuple[str, ...]
    server_cpu_seconds: float = float("nan")
    machine_busy_seconds: float = float("nan")

    @property
    def rate(self) -> float:
        return self.completed / self.duration

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    @property
    def generator_cores(self) -> float:
        """How many cores the load generator itself kept busy."""
        return self.generator_cpu_seconds / self.duration

    @property
    def server_cores(self) -> float:
        """How many cores the service's processes kept busy."""
        return self.server_cpu_seconds / self.duration

    @property
    def machine_cores(self) -> float:
        """How many cores were busy on the whole machine (everyone's work)."""
        return self.machine_busy_seconds / self.duration

    @property
    def server_ms_per_op(self) -> float:
        """Service CPU per completed operation."""
        return self.server_cpu_seconds / self.completed * 1000 if self.completed else float("nan")


class Generator:
    """A pool of generator processes, reused across cells (spawned once)."""

    def __init__(self, processes: int = GENERATOR_PROCESSES) -> None:
        self.processes = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn"),
                                         initializer=_prepare)
        # Spawn and prepare every process now, not inside the first cell's clock.
        for f in [self._pool.submit(time.sleep, 0.2) for _ in range(processes * 2)]:
            f.result()

    def close(self) -> None:
        self._pool.shutdown()

    def run(self, kind: str, urls: tuple[str, ...], namespace: str, tokens: list[str],
            clients: int, warmup: float, duration: float, label: str,
            names: tuple[str, ...] = (), server_pgid: int | None = None) -> CellResult:
        processes = min(self.processes, clients)
        start_at = time.time() + 0.5
        futures: list[Future[JobResult]] = []
        for p in range(processes):
            mine = list(range(p, clients, processes))
            futures.append(self._pool.submit(_run_job, Job(
                kind, tuple(urls[i % len(urls)] for i in mine), namespace,
                tuple(tokens[i % len(tokens)] for i in mine), start_at, warmup, duration,
                f"{label}-p{p}", names)))
        time.sleep(max(0.0, start_at + warmup - time.time()))
        server, machine = _cpu(server_pgid), machine_busy_seconds()
        time.sleep(max(0.0, start_at + warmup + duration - time.time()))
        server, machine = _cpu(server_pgid) - server, machine_busy_seconds() - machine
        results = [f.result(timeout=start_at - time.time() + warmup + duration + 120)
                   for f in futures]
        latencies = tuple(x for r in results for x in r.latencies)
        return CellResult(kind, clients, duration, latencies, sum(r.completed for r in results),
                          sum(r.errors for r in results),
                          next((r.error_sample for r in results if r.error_sample), ""),
                          sum(r.cpu_seconds for r in results),
                          tuple(n for r in results for n in r.names), server, machine)


def _cpu(pgid: int | None) -> float:
    return group_cpu_seconds(pgid) if pgid is not None else float("nan")


# -- inside a generator process ---------------------------------------------------------------
_POOL: list[tuple[bytes, str, str]] = []  # (CSR PEM, digest hex, signature base64)


def signing_material() -> tuple[bytes, str, str]:
    """What a client brings to one signing, made before any clock starts: a CSR for a fresh
    P-256 key (PEM), a random digest (hex), and the key's signature over it (base64)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.hazmat.primitives.serialization import Encoding

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    digest = hashlib.sha256(secrets.token_bytes(32)).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return csr.public_bytes(Encoding.PEM), digest.hex(), base64.b64encode(signature).decode()


def _prepare() -> None:
    _POOL.extend(signing_material() for _ in range(POOL_PER_PROCESS))


class _Connection:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, token: str
                ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=REQUEST_TIMEOUT)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def _run_job(job: Job) -> JobResult:
    result = JobResult()
    lock = threading.Lock()
    measure_from = job.start_at + job.warmup
    measure_to = measure_from + job.duration
    threads = [threading.Thread(target=_client, args=(job, i, result, lock, measure_from,
                                                      measure_to), daemon=True)
               for i in range(len(job.tokens))]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.time()))
    cpu = time.process_time()
    time.sleep(max(0.0, measure_to - time.time()))
    result.cpu_seconds = time.process_time() - cpu
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT * 2 + 5)
    return result


def _client(job: Job, index: int, result: JobResult, lock: threading.Lock,
            measure_from: float, measure_to: float) -> None:
    connection = _Connection(job.urls[index])
    token = job.tokens[index]
    offset = (index * 37 + os.getpid()) % len(_POOL)
    n = 0
    time.sleep(max(0.0, job.start_at - time.time()))
    while True:
        began = time.time()
        if began >= measure_to:
            return
        try:
            item = _POOL[(offset + n) % len(_POOL)]
            if job.kind == "sign":
                name = _sign(connection, job, token, item, f"{job.label}t{index}n{n}")
            elif job.kind == "bare":
                name = _bare(connection, token, item)
            elif job.kind == "sign2":
                name = _sign_two_steps(connection, job, token, item, f"{job.label}t{index}n{n}")
            else:
                name = job.names[(offset + n) % len(job.names)]
                _lookup(connection, job, token, name)
            error = None
        except Exception as exc:  # counted and sampled; the cell goes on
            error = f"{type(exc).__name__}: {exc}"[:300]
        ended = time.time()
        n += 1
        with lock:
            if error is not None:
                result.errors += 1
                result.error_sample = result.error_sample or error
            elif began >= measure_from and ended <= measure_to:
                result.completed += 1
                result.latencies.append(ended - began)
                if job.kind.startswith("sign") and len(result.names) < 200 and n % 3 == 0:
                    result.names.append(name)


def _sign(connection: _Connection, job: Job, token: str, item: tuple[bytes, str, str],
          unique: str) -> str:
    csr, digest, signature = item
    name = f"ghcr.io/bench/{unique}@sha256:{digest}"
    status, body = connection.request("POST", "/v1/sign", json.dumps({
        "namespace": job.namespace, "name": name, "csr": csr.decode(), "signature": signature,
        "provenance": {}}).encode(), token)
    if status != 201 or b'"bundle"' not in body:
        raise RuntimeError(f"POST /v1/sign: {status} {body[:200]!r}")
    return name


def _bare(connection: _Connection, token: str, item: tuple[bytes, str, str]) -> str:
    status, body = connection.request("POST", "/", json.dumps({"csr": item[0].decode()}
                                                              ).encode(), token)
    if status != 200 or b"BEGIN CERTIFICATE" not in body:
        raise RuntimeError(f"POST / (bare): {status} {body[:200]!r}")
    return ""


def _sign_two_steps(connection: _Connection, job: Job, token: str,
                    item: tuple[bytes, str, str], unique: str) -> str:
    csr, digest, signature = item
    status, body = connection.request("POST", "/v1/certificates", json.dumps({
        "namespace": job.namespace, "csr": csr.decode(), "provenance": {}}).encode(), token)
    if status != 200:
        raise RuntimeError(f"POST /v1/certificates: {status} {body[:200]!r}")
    leaf = json.loads(body)["certificate_chain"][0]
    name = f"ghcr.io/bench/{unique}@sha256:{digest}"
    status, body = connection.request("POST", "/v1/signatures", json.dumps({
        "namespace": job.namespace, "name": name, "certificate": leaf,
        "signature": signature}).encode(), token)
    if status != 201:
        raise RuntimeError(f"POST /v1/signatures: {status} {body[:200]!r}")
    return name


def _lookup(connection: _Connection, job: Job, token: str, name: str) -> None:
    status, body = connection.request(
        "GET", f"/v1/entries?namespace={quote(job.namespace)}&name={quote(name, safe='')}",
        None, token)
    if status != 200:
        raise RuntimeError(f"GET /v1/entries: {status} {body[:200]!r}")
