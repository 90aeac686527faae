"""The benchmark suite runs (``--quick``), and its report keeps other people's sections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[2]


def test_report_replaces_only_its_own_sections(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## Action image\n\nimage figures\n\n"
                   f"{report.RESULTS}\n\nold results\n\n## Web page\n\npage figures\n")
    report.write_sections({report.RESULTS: f"{report.RESULTS}\n\nnew results\n",
                           report.SCALE: f"{report.SCALE}\n\nscale figures\n"}, doc)
    text = doc.read_text()
    assert "image figures" in text and "page figures" in text and "intro" in text
    assert "old results" not in text and "new results" in text
    # In place where it was; a section that was missing is appended.
    assert text.index("## Action image") < text.index("new results") < text.index("## Web page")
    assert text.rstrip().endswith("scale figures")


@pytest.mark.integration
def test_quick_benchmark_runs_every_part() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for heading in report.SECTIONS:
        assert heading in done.stdout
    assert "| sqlite | 1 | 8 |" in done.stdout
    assert "| postgresql | 2 | 8 |" in done.stdout
    assert "bundles/s" in done.stdout
    # Signings with the transparency logs and without, on both stores.
    assert "| sqlite | 4 |" in done.stdout and "| postgresql | 4 |" in done.stdout


def test_profile_folds_collapsed_stacks_by_package_and_by_our_function() -> None:
    from bench import profiling

    raw = "\n".join([
        "run (uvicorn/main.py:10);submit (/w/signer/service/signing.py:5);"
        "sign (/v/site-packages/cryptography/x.py:1) 30",
        "run (uvicorn/main.py:10);submit (/w/signer/service/signing.py:5);"
        "execute (/v/site-packages/sqlalchemy/engine/base.py:2) 50",
        "run (uvicorn/main.py:10);loop (/v/site-packages/uvicorn/server.py:3) 20",
        "garbage line",
    ])
    found = profiling.fold(raw)
    assert found.samples == 100
    assert dict(found.by_package) == {"SQLAlchemy": 0.5, "cryptography": 0.3, "uvicorn": 0.2}
    assert dict(found.by_function)["signer/service/signing.py:submit"] == 0.8
