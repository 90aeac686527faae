"""The long API fuzzing run (issue 6): schemathesis, at least 10,000 generated requests.

A fresh data directory is initialized and the real service started on loopback (without
the rate limit: a fuzzer is one very busy principal), on SQLite and on PostgreSQL. A
namespace, a policy and an API key are created; tests/fuzz/api.py then fuzzes every
operation of /openapi.json in four passes (tenant key + its namespace, admin key, negative
data, no or generated credentials) and checks each response: no 5xx, a documented status,
a documented content type, a body and headers that match the schema, negative data
rejected. Cases that hit a bug an xfail test already pins are sent too, and their 5xx
counted apart ("known").

Run: ``python bench/fuzz_api.py [--examples 150] [--backend both] [--write]``; it prints a
Markdown table and, with --write, puts it in the "Fuzzing figures" block of
docs/security.md. Exits 1 on any unknown 5xx or schema violation.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.github_oidc import FakeGitHubIssuer  # noqa: E402
from tests.fuzz import api  # noqa: E402
from tests.service_process import Service, database, init  # noqa: E402

DOC = ROOT / "docs" / "security.md"
BEGIN, END = "<!-- fuzz_api:begin -->", "<!-- fuzz_api:end -->"


def fuzz(backend: str, examples: int, seed: int) -> api.Report:
    issuer = FakeGitHubIssuer()
    try:
        with tempfile.TemporaryDirectory() as tmp, database(backend) as url:
            data = Path(tmp) / "data"
            svc = Service(data, init(data, url), issuer.url, database_url=url,
                          env={"SIGNER_RATE_LIMIT": "0"})
            svc.start()
            try:
                tenant = svc.tenant()
                report = api.run(svc.url, tenant.api_key, tenant.namespace, svc.admin_key,
                                 examples, send_known_bugs=True, seed=seed,
                                 log=lambda line: print(f"  {backend}: {line}", flush=True))
                assert svc.get("/readyz").status_code == 200
                return report
            finally:
                svc.stop()
    finally:
        issuer.stop()


def table(reports: dict[str, api.Report], examples: int, seed: int) -> str:
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} ({platform.python_version()}),"
        f" `python bench/fuzz_api.py --examples {examples} --seed {seed}`:",
        "",
        "| backend | requests | operations | 5xx (unknown) | 5xx (known bugs, xfail-pinned) "
        "| schema violations | seconds | statuses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in reports.items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
        known = ", ".join(f"{n} {why}" for why, n in r.known.items()) or "0"
        lines.append(f"| {backend} | {r.requests} | {len(r.per_operation)} | "
                     f"{len(r.server_errors)} | {known} | {len(r.violations)} | "
                     f"{r.seconds:.0f} | {statuses} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=150,
                        help="generated cases per operation and pass")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--write", action="store_true", help="update docs/security.md")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    reports = {b: fuzz(b, args.examples, args.seed) for b in backends}
    text = table(reports, args.examples, args.seed)
    print(text)
    for backend, report in reports.items():
        print(f"{backend}: {report.summary()}")
        for line in report.server_errors[:20] + report.violations[:20]:
            print(f"  {line}")
    if args.write:
        doc = DOC.read_text()
        block = f"{BEGIN}\n{text}\n{END}"
        DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc,
                              flags=re.S))
    failed = any(r.server_errors or r.violations for r in reports.values())
    total = sum(r.requests for r in reports.values())
    return 1 if failed or total < 10_000 else 0


if __name__ == "__main__":
    sys.exit(main())
