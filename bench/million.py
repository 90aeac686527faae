"""``python -m bench.million [sqlite|postgresql]``: the 1 M-signature lookup row of one store.

The same measurement ``python -m bench --million`` makes (``bench/scale.py``, 1 k then 1 M in
one store), for one store only; the rows replace that store's rows in docs/benchmarks.json,
and docs/benchmarks.md is written again from that file (each row with its date).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import report, scale
from tests.fakes.github_oidc import FakeGitHubIssuer

SIZES = [1_000, 1_000_000]
REQUESTS = 200


def main() -> int:
    backend = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    issuer = FakeGitHubIssuer()
    try:
        with tempfile.TemporaryDirectory(prefix="signer-bench-") as tmp:
            rows = scale.measure(issuer, backend, SIZES, REQUESTS, Path(tmp), print)
    finally:
        issuer.stop()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    data = json.loads(report.DATA.read_text())
    measured = {(r.backend, r.stored) for r in rows}
    data["scale"] = [s for s in data["scale"] if (s["backend"], s["stored"]) not in measured]
    data["scale"] += [{**asdict(r), "date": date} for r in rows]
    report.DATA.write_text(json.dumps(data, indent=1) + "\n")
    # The report again, from the figures on file (every other figure keeps its run's date).
    run = report.Run(**{k: data[k] for k in ("date", "commit", "cores", "quick", "seconds")})
    report.carry_over(run)
    report.write_sections(report.markdown(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
