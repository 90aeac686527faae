"""Signings/s with every key on a PKCS#11 token (SoftHSM2) beside the same with key files.

``python -m bench.tokenkeys [--quick] [--no-write]``: one real service per cell (``signer
server init`` and ``start``, SQLite, 1 worker), the keys in files or on a fresh SoftHSM2 token
(``SIGNER_TEST_KEYS=pkcs11``, tests/softhsm.py), complete signings (certificate + signature
upload) from the load generator, interleaved files/token twice (the machine's load drifts;
the better run of each counts). Also the raw cost of one signature by each kind of key,
in-process: what the token adds to each of the ~7 signatures of a signing (2 by the CA,
the SCT, the TSA's, the promise, and a share of two checkpoints). Writes its section of
docs/benchmarks.md (not with ``--no-write``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.load import Generator
from bench.report import write_sections
from bench.stack import running
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.softhsm import KEYS_ENV, MODULE, PIN, SoftHSM


@dataclass(frozen=True)
class Cell:
    keys: str
    clients: int
    rate: float  # signings/s
    p50_ms: float
    p99_ms: float
    errors: int


def signings(issuer: FakeGitHubIssuer, generator: Generator, keys: str, clients: int,
             warmup: float, duration: float) -> Cell:
    previous = os.environ.get(KEYS_ENV)
    os.environ[KEYS_ENV] = keys
    try:
        with running(issuer, "sqlite") as stack:
            assert stack.service.process is not None
            result = generator.run("sign", (stack.service.url,), stack.tenant.namespace,
                                   stack.tokens(clients), clients, warmup, duration,
                                   f"keys-{keys}", server_pgid=stack.service.process.pid)
    finally:
        if previous is None:
            os.environ.pop(KEYS_ENV, None)
        else:
            os.environ[KEYS_ENV] = previous
    return Cell(keys, clients, result.rate, result.ms(0.5), result.ms(0.99), result.errors)


def raw_signatures(seconds: float) -> dict[str, float]:
    """Signatures/s of one P-256 key over 32 bytes, in this process: file key vs token key."""
    from signer.service import keys, pkcs11

    with tempfile.TemporaryDirectory(prefix="signer-bench-keys-") as tmp:
        root = Path(tmp)
        hsm = SoftHSM.create(root / "softhsm")
        hsm.new_token("bench")
        os.environ.update(hsm.env)
        os.environ["SIGNER_PKCS11_PIN"] = PIN
        (root / "keys").mkdir()
        file_key = keys.KeyFiles(root / "keys", None).generate("k")
        store = pkcs11.TokenKeys(root / "keys", pkcs11.Reference(MODULE,
                                                                  "bench"))
        token_key = store.generate("k")
        rates = {}
        for name, key in (("files", file_key), ("pkcs11", token_key)):
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                key.sign(b"\x00" * 32)
                done += 1
            rates[name] = done / (time.perf_counter() - start)
        return rates


def main(quick: bool, write: bool) -> None:
    warmup, duration = (0.5, 2.0) if quick else (2.0, 8.0)
    client_counts = (8,) if quick else (8, 32)
    raw = raw_signatures(0.5 if quick else 2.0)
    print(f"one signature in-process: file key {raw['files']:,.0f}/s "
          f"({1e6 / raw['files']:.0f} µs), token key {raw['pkcs11']:,.0f}/s "
          f"({1e6 / raw['pkcs11']:.0f} µs)")
    issuer = FakeGitHubIssuer()
    generator = Generator()
    best: dict[tuple[str, int], Cell] = {}
    try:
        for clients in client_counts:
            for keys in ("files", "pkcs11", "files", "pkcs11"):
                cell = signings(issuer, generator, keys, clients, warmup, duration)
                print(f"  {keys:6} {clients:2} clients: {cell.rate:6.1f} signings/s, "
                      f"p50 {cell.p50_ms:.0f} ms, p99 {cell.p99_ms:.0f} ms, "
                      f"{cell.errors} errors", flush=True)
                if (keys, clients) not in best or cell.rate > best[(keys, clients)].rate:
                    best[(keys, clients)] = cell
    finally:
        generator.close()
        issuer.stop()
    section = markdown(raw, best, client_counts, warmup, duration)
    print("\n" + section)
    if write:
        write_sections({HEADING: section})


HEADING = "## Signing service: keys on a PKCS#11 token beside key files"


def markdown(raw: dict[str, float], best: dict[tuple[str, int], Cell],
             client_counts: tuple[int, ...], warmup: float, duration: float) -> str:
    lines = [
        HEADING, "",
        f"`python -m bench.tokenkeys` (`bench/tokenkeys.py`), {datetime.now(UTC):%Y-%m-%d}: "
        "complete signings (certificate + signature upload) against a real service (SQLite, "
        "1 worker), every key in files or every key on a SoftHSM2 2.6 token "
        "(`SIGNER_TEST_KEYS=pkcs11`); the load generator's clients, "
        f"{warmup:g} s warm-up, {duration:g} s measured, files and token interleaved twice, "
        "the better run of each. One signature in-process: file key "
        f"{raw['files']:,.0f}/s ({1e6 / raw['files']:.0f} µs), token key "
        f"{raw['pkcs11']:,.0f}/s ({1e6 / raw['pkcs11']:.0f} µs); a signing makes 5 "
        "signatures plus a share of two checkpoints (docs/keys.md). Load average at the "
        f"start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
        "| clients | file keys /s | p50 ms | token keys /s | p50 ms | token ÷ files |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for clients in client_counts:
        f, t = best[("files", clients)], best[("pkcs11", clients)]
        lines.append(f"| {clients} | {f.rate:.0f} | {f.p50_ms:.0f} | {t.rate:.0f} | "
                     f"{t.p50_ms:.0f} | {t.rate / f.rate:.0%} |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main("--quick" in sys.argv[1:], "--no-write" not in sys.argv[1:])
