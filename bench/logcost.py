"""What the transparency logs cost a signing: the service layer with the logs and without.

In-process (no HTTP), so the difference is the logs' alone: the same ``SigningService`` calls
the routes make (OIDC check, certificate with its SCT, signature check, timestamp, commit),
from N threads, once with the service's two logs (CT log for the precertificate, signature
log for the entry: Merkle nodes, checkpoint, promise, proof, batched) and once with a
stand-in that writes the same rows in a plain transaction per request and logs nothing.
CPU per signing is the process's CPU time over the signings done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from bench.load import signing_material
from bench.stack import running
from signer.service import runtime
from signer.service.config import Settings
from signer.service.database import Engine
from signer.service.log import LogItem, Sequenced, TransparencyLog
from tests.fakes.github_oidc import FakeGitHubIssuer


@dataclass(frozen=True)
class Row:
    backend: str
    threads: int
    with_log: float  # signings/s
    without_log: float
    with_log_ms: float  # CPU ms per signing
    without_log_ms: float


class NoLog:
    """The log's interface with nothing logged: each item's rows in their own transaction."""

    def __init__(self, log: TransparencyLog, engine: Engine) -> None:
        self.signer, self.log_id, self.base_url = log.signer, log.log_id, log.base_url
        self._writer = engine.execution_options(write=True)
        self._count = 0
        self._lock = threading.Lock()

    def append(self, item: LogItem[Any]) -> Any:
        with self._lock:
            self._count += 1
            index = self._count
        entry = Sequenced(index, int(time.time()), item.body, index + 1, bytes(32), [], "",
                          None)
        with self._writer.begin() as tx:
            return item.write(tx, entry)


def measure(issuer: FakeGitHubIssuer, backend: str, threads: int, count: int,
            log: Callable[[str], None] = print) -> Row:
    with running(issuer, backend) as stack:
        stack.service.stop()  # the data directory and database stay; this process signs
        settings = Settings(data_dir=stack.service.data_dir, database_url=stack.database_url,
                            insecure_issuers=frozenset({issuer.url}))
        rt = runtime.load(settings)
        tokens = stack.tokens(threads)
        rates: dict[bool, tuple[float, float]] = {}
        for with_log in (True, False, True, False):  # interleaved: the machine's load drifts
            if not with_log:
                service, engine = rt.service, rt.store.engine
                service.tlog = NoLog(service.tlog, engine)  # type: ignore[assignment]
                service.ctlog = NoLog(service.ctlog, engine)  # type: ignore[assignment]
            rate, ms = _run(rt, stack.tenant.namespace, tokens, count)
            if not with_log:
                rt = runtime.load(settings)
            best = rates.get(with_log)
            if best is None or rate > best[0]:
                rates[with_log] = (rate, ms)
            log(f"  {backend}, {threads} threads, {'with' if with_log else 'without'} the "
                f"logs: {rate:,.0f}/s, {ms:.2f} ms CPU each")
    return Row(backend, threads, rates[True][0], rates[False][0], rates[True][1],
               rates[False][1])


def _run(rt: runtime.Runtime, namespace: str, tokens: list[str], count: int
         ) -> tuple[float, float]:
    items = [signing_material() for _ in range(count)]
    threads = len(tokens)

    def work(index: int) -> None:
        bearer = "Bearer " + tokens[index]
        for csr, digest, signature in items[index::threads]:
            principal = rt.auth.authenticate(bearer)
            issued = rt.service.issue_certificate(principal, namespace, csr.decode(), {})
            pem = issued.chain[0].public_bytes(Encoding.PEM).decode()
            principal = rt.auth.authenticate(bearer)
            _, created = rt.service.submit_signature(
                principal, namespace, f"ghcr.io/bench/log{index}@sha256:{digest}", pem,
                signature)
            assert created

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1000


if __name__ == "__main__":
    issuer = FakeGitHubIssuer()
    try:
        for backend in ("sqlite", "postgresql"):
            print(measure(issuer, backend, 8, 300))
    finally:
        issuer.stop()
