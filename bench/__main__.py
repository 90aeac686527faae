"""``python -m bench [--quick] [--million] [--no-write]``: every part, one table, one report.

Each part is bounded in time (fixed durations, fixed request counts); the whole run takes
about ten minutes (``--quick``: well under a minute, for CI; ``--million`` adds the 1 M
bulk load, tens of minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import bare, ceiling, logcost, offline, profiling, report, scale
from bench.load import CellResult, Generator
from bench.stack import Stack, running
from signer.artifact import ArtifactRef
from signer.client import Client
from signer.operations import sign
from tests.fakes.github_oidc import FakeGitHubIssuer


@dataclass(frozen=True)
class Plan:
    configs: tuple[tuple[str, int, tuple[int, ...]], ...]  # (backend, workers, client counts)
    warmup: float
    duration: float
    lookup_clients: int
    lookup_duration: float
    ceiling_budget: float
    offline_budget: float
    scale_backends: tuple[str, ...]
    scale_sizes: tuple[int, ...]
    scale_requests: int
    profile: bool
    log_threads: tuple[int, ...] = (8, 32)
    log_signings: int = 400


FULL = Plan(
    configs=(("sqlite", 1, (1, 32)), ("sqlite", 2, (1, 8, 32, 64)), ("postgresql", 1, (1, 32)),
             ("postgresql", 2, (1, 8, 32, 64))),
    warmup=2.0, duration=8.0, lookup_clients=16, lookup_duration=5.0, ceiling_budget=0.6,
    offline_budget=3.0, scale_backends=("sqlite", "postgresql"), scale_sizes=(1_000, 100_000),
    scale_requests=200, profile=True)
QUICK = Plan(
    configs=(("sqlite", 1, (1, 8)), ("postgresql", 2, (8,))), warmup=0.5, duration=1.5,
    lookup_clients=4, lookup_duration=1.0, ceiling_budget=0.1, offline_budget=0.4,
    scale_backends=("sqlite",), scale_sizes=(1_000, 5_000), scale_requests=20, profile=False,
    log_threads=(4,), log_signings=40)
MILLION = 1_000_000
# "load": lookups, offline and the profile too; "offline" alone: one signing, then offline.
PARTS = ("ceiling", "load", "scale", "log", "offline")
PROFILE_CLIENTS = 32


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (under a minute): fewer cells, shorter cells")
    parser.add_argument("--million", action="store_true",
                        help="also bulk-load to 1,000,000 signatures (slow)")
    parser.add_argument("--no-write", action="store_true",
                        help="print only; leave docs/ alone (default with --quick)")
    parser.add_argument("--write", action="store_true", help="write docs/ even with --quick")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}; figures of parts "
                             "not run are carried over from docs/benchmarks.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    plan = QUICK if args.quick else FULL
    if args.million:
        plan = Plan(**{**asdict(plan), "scale_sizes": (*plan.scale_sizes, MILLION)})
    write = args.write or not (args.no_write or args.quick)

    started = time.monotonic()
    run = report.Run(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), commit=_commit(),
                     cores=os.cpu_count() or 1, quick=args.quick)
    if "ceiling" in parts:
        _log("crypto ceiling")
        measured = ceiling.measure(plan.ceiling_budget)
        run.ceiling = [{"name": op.name, "per_signing": op.per_signing, "us": op.seconds * 1e6}
                       for op in measured.operations]
        _log(f"  {measured.seconds_per_signing * 1000:.2f} ms per signing, "
             f"{measured.per_core:,.0f}/s per core")

    issuer = FakeGitHubIssuer()
    generator = Generator()
    try:
        with tempfile.TemporaryDirectory(prefix="signer-bench-") as tmp:
            workdir = Path(tmp)
            for backend, workers, clients in plan.configs if "load" in parts else ():
                with running(issuer, backend, workers) as stack:
                    _load(run, plan, generator, stack, workers, clients, workdir)
            for backend in ("sqlite", "postgresql") if "log" in parts else ():
                _log(f"signing with the logs and without, {backend}")
                for threads in plan.log_threads:
                    run.logcost.append(asdict(logcost.measure(
                        issuer, backend, threads, plan.log_signings, _log)))
            if "offline" in parts and not run.offline:
                with running(issuer, "sqlite") as stack:
                    _offline(run, plan, stack, workdir)
            for backend in plan.scale_backends if "scale" in parts else ():
                _log(f"lookup latency by size, {backend}: {plan.scale_sizes}")
                for row in scale.measure(issuer, backend, list(plan.scale_sizes),
                                         plan.scale_requests, workdir, _log):
                    run.scale.append(asdict(row))
    finally:
        generator.close()
        issuer.stop()
    run.seconds = time.monotonic() - started

    if write:
        report.carry_over(run)
    for text in report.markdown(run).values():
        print(text)
    if write:
        report.write(run)
        _log(f"written: {report.DOC.relative_to(report.ROOT)}, "
             f"{report.CHART.relative_to(report.ROOT)}, {report.DATA.relative_to(report.ROOT)}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report.chart(run, Path(tmp) / "chart.png")  # the chart code runs in --quick too
    failed = [c for c in run.cells if c.errors] + [lk for lk in run.lookups if lk.errors]
    _log(f"done in {run.seconds / 60:.1f} min" + (f"; {len(failed)} cells had errors"
                                                  if failed else ""))
    return 1 if failed else 0


def _load(run: report.Run, plan: Plan, generator: Generator, stack: Stack, workers: int,
          clients: tuple[int, ...], workdir: Path) -> None:
    backend, service = stack.backend, stack.service
    tokens = stack.tokens(max(clients))
    urls = (service.url,)
    pgid = service.process.pid if service.process else None
    names: tuple[str, ...] = ()
    for count in clients:
        # The bare ceiling first, back to back with the signer, by the same generator.
        with bare.running(workers) as (bare_url, bare_pgid):
            ceiling_cell = generator.run("bare", (bare_url,), "", tokens, count, plan.warmup,
                                         plan.duration, f"bare{workers}c{count}",
                                         server_pgid=bare_pgid)
        _log(f"bare ceiling, {workers} worker(s), {count} clients: {ceiling_cell.rate:,.0f}/s, "
             f"{ceiling_cell.server_ms_per_op:.2f} ms CPU each, errors {ceiling_cell.errors}")
        _log(f"signing: {backend}, {workers} worker(s), {count} clients")
        cell = generator.run("sign", urls, stack.tenant.namespace, tokens, count, plan.warmup,
                             plan.duration, f"{backend[0]}{workers}c{count}",
                             server_pgid=pgid)
        names = names or cell.names
        run.cells.append(_cell(backend, workers, cell, ceiling_cell))
        _log(f"  {cell.rate:,.0f}/s ({cell.rate / ceiling_cell.rate:.2f} of bare)"
             f", p50 {cell.ms(50):.0f} ms, p99 {cell.ms(99):.0f} ms, "
             f"service {cell.server_cores:.2f} cores, {cell.server_ms_per_op:.1f} ms CPU each, "
             f"errors {cell.errors} {cell.error_sample[:120]}")
    if not names:
        return
    _log(f"lookups: {backend}, {workers} worker(s), {plan.lookup_clients} clients")
    lookup = generator.run("lookup", urls, stack.tenant.namespace, tokens, plan.lookup_clients,
                           plan.warmup, plan.lookup_duration, "lookup", names=names,
                           server_pgid=pgid)
    run.lookups.append(report.Lookup(backend, workers, plan.lookup_clients, lookup.rate,
                                     lookup.ms(50), lookup.ms(99), lookup.errors,
                                     lookup.server_ms_per_op))
    _log(f"  {lookup.rate:,.0f}/s, p50 {lookup.ms(50):.0f} ms, errors {lookup.errors}")
    if not run.offline:
        _offline(run, plan, stack, workdir)
    if plan.profile and workers == 1 and profiling.available() and pgid is not None:
        _profile(run, plan, generator, stack, tokens, workdir)


def _offline(run: report.Run, plan: Plan, stack: Stack, workdir: Path) -> None:
    _log("offline verification")
    token = stack.tokens(1)[0]
    client = Client(stack.service.url, token)
    ref = ArtifactRef("ghcr.io/bench/offline", "ab" * 32)
    signed = sign(client, stack.tenant.namespace, ref, {}, workdir / "offline.sigstore.json")
    result = offline.measure(signed.bundle_json, client.trust_root(), str(ref), signed.issuer,
                             signed.identity, plan.offline_budget)
    run.offline = {"full_per_second": result.full_per_second,
                   "verify_per_second": result.verify_per_second}
    _log(f"  {result.full_per_second:,.0f} bundles/s ({result.verify_per_second:,.0f}/s "
         "parsed)")
    if plan.profile and profiling.available():
        _log("profile: offline verification")
        bundle_path, trust_path = workdir / "offline.sigstore.json", workdir / "trust.json"
        trust_path.write_bytes(client.trust_root())
        found = profiling.command(
            [sys.executable, "-m", "bench.offline", str(bundle_path), str(trust_path), str(ref),
             signed.issuer, signed.identity, "--seconds", str(plan.duration)],
            workdir / "profile-offline.txt")
        if not found.empty:
            run.profiles.append({"what": "offline verification (one process, one core)",
                                 "samples": found.samples, "by_package": found.by_package,
                                 "by_function": found.by_function, "hottest": found.hottest})


def _profile(run: report.Run, plan: Plan, generator: Generator, stack: Stack,
             tokens: list[str], workdir: Path) -> None:
    assert stack.service.process is not None
    _log(f"profile: {stack.backend}, {PROFILE_CLIENTS} clients")
    output = workdir / f"profile-{stack.backend}.txt"
    sampler = profiling.start(stack.service.process.pid, plan.duration + plan.warmup, output)
    cell = generator.run("sign", (stack.service.url,), stack.tenant.namespace, tokens,
                         PROFILE_CLIENTS, plan.warmup, plan.duration, "profile")
    found = profiling.finish(sampler, output)
    if not found.empty:
        run.profiles.append({"what": f"complete signings, {stack.backend}, 1 worker, "
                                     f"{PROFILE_CLIENTS} clients, {cell.rate:,.0f} signings/s "
                                     "while sampled",
                             "samples": found.samples, "by_package": found.by_package,
                             "by_function": found.by_function, "hottest": found.hottest})


def _cell(backend: str, workers: int, cell: CellResult, ceiling_cell: CellResult
          ) -> report.Cell:
    return report.Cell(backend, workers, cell.clients, cell.rate, cell.ms(50), cell.ms(95),
                       cell.ms(99), cell.errors, cell.server_cores, cell.server_ms_per_op,
                       cell.generator_cores, cell.machine_cores, cell.error_sample,
                       ceiling_cell.rate, ceiling_cell.ms(99), ceiling_cell.server_ms_per_op,
                       os.getloadavg()[0])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=report.ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
