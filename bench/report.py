"""The results as Markdown (printed, and written into docs/benchmarks.md) and as a PNG chart.

docs/benchmarks.md has sections owned by other benchmarks (``## Web page``, ``## Action
image``): only the sections named in ``SECTIONS`` are replaced, the rest is kept as it is.
The raw figures of the last run go to docs/benchmarks.json; a figure this run did not
measure (the 1 M-signature lookups run only with ``--million``) is carried over from there
with the date it was measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
DATA = ROOT / "docs" / "benchmarks.json"
CHART = ROOT / "docs" / "benchmarks-signing.png"

RESULTS = "## Signing service: results"
CEILING = "## Signing service: crypto ceiling"
LOOKUPS = "## Signing service: lookups and offline verification"
SCALE = "## Signing service: lookup latency by store size"
PROFILE = "## Signing service: where the time goes (profile)"
LOGCOST = "## Signing service: with the transparency logs and without"
SECTIONS = (RESULTS, CEILING, LOOKUPS, SCALE, PROFILE, LOGCOST)

TARGET_RATE = 600.0
TARGET_P99_MS = 150.0
TARGET_CEILING_SHARE = 0.5
TARGET_OFFLINE = 1500.0
TARGET_SCALE_RATIO = 1.5
TARGET_CLIENTS = 32
TARGET_WORKERS = 2
TARGET_BARE_SHARE = 0.30


@dataclass
class Cell:
    backend: str
    workers: int
    clients: int
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    server_cores: float
    server_ms: float  # service CPU per signing
    generator_cores: float
    machine_cores: float
    error_sample: str = ""
    # The bare ceiling (bench/bare.py), same generator, clients and workers, just before.
    bare_rate: float = float("nan")
    bare_p99_ms: float = float("nan")
    bare_ms: float = float("nan")  # its CPU per certificate
    load_average: float = float("nan")  # the machine's 1-minute load average after the cell

    @property
    def of_bare(self) -> float:
        return self.rate / self.bare_rate if self.bare_rate else float("nan")


@dataclass
class Lookup:
    backend: str
    workers: int
    clients: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_ms: float


@dataclass
class Run:
    date: str
    commit: str
    cores: int
    quick: bool
    ceiling: list[dict[str, Any]] = field(default_factory=list)  # name, per_signing, us
    cells: list[Cell] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)
    offline: dict[str, float] = field(default_factory=dict)
    scale: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    logcost: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ceiling_ms(self) -> float:
        return float(sum(op["per_signing"] * op["us"] for op in self.ceiling)) / 1000

    @property
    def ceiling_per_core(self) -> float:
        return 1000 / self.ceiling_ms if self.ceiling else float("nan")

    def ceiling_for(self, workers: int) -> float:
        """The ceiling of a service with this many worker processes on this machine."""
        return self.ceiling_per_core * min(workers, self.cores)


# -- Markdown ---------------------------------------------------------------------------------
def _f(value: float, digits: int = 0) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def targets(run: Run) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows."""
    rows: list[tuple[str, str, str]] = []
    for c in run.cells:
        if c.clients != TARGET_CLIENTS or c.workers != TARGET_WORKERS:
            continue
        where = f"{c.backend}, {c.workers} workers, {c.clients} clients"
        rows.append((f"≥ {TARGET_RATE:.0f} signings/s ({where})", f"{c.rate:,.0f}/s",
                     _mark(c.rate >= TARGET_RATE)))
        rows.append((f"p99 ≤ {TARGET_P99_MS:.0f} ms, 0 errors ({where})",
                     f"{c.p99_ms:,.0f} ms, {c.errors} errors",
                     _mark(c.p99_ms <= TARGET_P99_MS and c.errors == 0)))
        rows.append((f"≥ {TARGET_BARE_SHARE:.2f} of the bare ceiling ({where})",
                     f"{c.of_bare:.2f} of {_f(c.bare_rate)}/s (load average "
                     f"{_f(c.load_average, 1)})", _mark(c.of_bare >= TARGET_BARE_SHARE)))
    at = [c for c in run.cells if c.clients == TARGET_CLIENTS]
    if at:
        best = max(at, key=lambda c: c.rate)
        share = best.rate / run.ceiling_for(best.workers)
        rows.append((f"(issue 5) ≥ {TARGET_CEILING_SHARE:.0%} of the crypto ceiling, best "
                     f"cell ({best.backend}, {best.workers} worker(s))",
                     f"{share:.0%} of {run.ceiling_for(best.workers):,.0f}/s",
                     _mark(share >= TARGET_CEILING_SHARE)))
        efficiency = run.ceiling_ms / best.server_ms if best.server_ms else float("nan")
        rows.append(("(same, by CPU: crypto ms ÷ service CPU ms per signing)",
                     f"{efficiency:.0%} ({run.ceiling_ms:.2f} ms of {best.server_ms:.2f} ms)",
                     _mark(efficiency >= TARGET_CEILING_SHARE)))
    if run.offline:
        rate = run.offline["full_per_second"]
        rows.append((f"offline verification ≥ {TARGET_OFFLINE:,.0f} bundles/s, one core",
                     f"{rate:,.0f}/s", _mark(rate >= TARGET_OFFLINE)))
    for backend in sorted({s["backend"] for s in run.scale}):
        mine = sorted((s for s in run.scale if s["backend"] == backend),
                      key=lambda s: s["stored"])
        if len(mine) >= 2:
            first, last = mine[0], mine[-1]
            ratio = last["entries_p50_ms"] / first["entries_p50_ms"]
            label = f"{last['stored']:,}"
            rows.append((f"lookup p50 at 1 M ≤ {TARGET_SCALE_RATIO}× at 1 k ({backend})",
                         f"{ratio:.2f}× at {label} ({_f(first['entries_p50_ms'], 1)} → "
                         f"{_f(last['entries_p50_ms'], 1)} ms)",
                         _mark(ratio <= TARGET_SCALE_RATIO) if last["stored"] >= 1_000_000
                         else ("**missed already**" if ratio > TARGET_SCALE_RATIO
                               else "not measured at 1 M")))
    return rows


def results_section(run: Run) -> str:
    busy = [c.machine_cores for c in run.cells if not math.isnan(c.machine_cores)]
    lines = [
        RESULTS, "",
        "`bench/run` (or `python -m bench`; `--quick` for the CI smoke run, `--million` to "
        "add the 1 M-signature lookups) — issues 5 and 14. Complete signings through HTTP, "
        "one request each as the CLI and the actions sign: OIDC token + CSR + signature over "
        "the digest → `POST /v1/sign` (certificate, timestamp, CT and signature log "
        "entries, one commit) → 201 with the bundle; from a load generator on the same "
        "machine (client threads with "
        "keep-alive `http.client` connections in 2 processes; tokens pre-minted by the fake "
        "GitHub issuer; keys, CSRs and signatures prepared before the clock starts; each "
        "client its own identity; the per-principal rate limit off). Before each cell the "
        "same generator, with the same clients, runs the *bare ceiling* for as long: "
        "`bench/bare.py`, a Starlette + uvicorn endpoint with the same worker count that "
        "parses a CSR and returns one 5-minute P-256 certificate per request; *of bare* is "
        "the signer's rate ÷ the bare rate of the cell before it.", "",
        f"Run of {run.date} at `{run.commit}`, {run.cores} cores, "
        f"{'quick mode, ' if run.quick else ''}{run.seconds / 60:.1f} min. The machine is "
        f"shared: on average {_f(sum(busy) / len(busy) if busy else float('nan'), 2)} of "
        f"{run.cores} cores were busy during the cells (service + generator + everyone "
        "else), so absolute rates are noisy; the CPU columns (*service ms/signing*) and "
        "the ratios measured in the same run are the figures to compare.", "",
        "| target | measured | |", "|---|---|---|",
        *[f"| {t} | {m} | {v} |" for t, m, v in targets(run)], "",
        f"![signings per second and latency]({CHART.name})", "",
        "| store | workers | clients | signings/s | p50 ms | p95 ms | p99 ms | errors | "
        "service cores | service CPU ms/signing | generator cores | bare /s | bare CPU ms | "
        "of bare | load avg | of crypto ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in run.cells:
        lines.append(
            f"| {c.backend} | {c.workers} | {c.clients} | {_f(c.rate)} | {_f(c.p50_ms, 1)} | "
            f"{_f(c.p95_ms, 1)} | {_f(c.p99_ms, 1)} | {c.errors} | {_f(c.server_cores, 2)} | "
            f"{_f(c.server_ms, 2)} | {_f(c.generator_cores, 2)} | {_f(c.bare_rate)} | "
            f"{_f(c.bare_ms, 2)} | {_f(c.of_bare, 2)} | {_f(c.load_average, 1)} | "
            f"{c.rate / run.ceiling_for(c.workers):.1%} |")
    errors = [c for c in run.cells if c.errors and c.error_sample]
    if errors:
        lines += ["", "First error of each cell with errors:", ""]
        lines += [f"- {c.backend}, {c.workers} worker(s), {c.clients} clients: "
                  f"`{c.error_sample[:200]}`" for c in errors]
    lines += ["", "*of crypto ceiling*: signings/s ÷ (crypto ceiling per core × workers). "
              "*service CPU ms/signing*: CPU of the service's processes (all threads, "
              "user + system, from /proc) during the cell ÷ signings completed; PostgreSQL's "
              "own processes are not included.", ""]
    return "\n".join(lines)


def ceiling_section(run: Run) -> str:
    lines = [
        CEILING, "",
        "The cryptography of one complete signing, in-process on one core (no HTTP, no "
        "database, no framework), measured in the same run as CPU time (median of 5 "
        "rounds), on the same library calls the service makes.", "",
        "| operation | per signing | µs each | µs per signing |", "|---|---:|---:|---:|",
    ]
    for op in run.ceiling:
        lines.append(f"| {op['name']} | ×{op['per_signing']} | {op['us']:,.0f} | "
                     f"{op['per_signing'] * op['us']:,.0f} |")
    lines += [f"| **one complete signing** | | | **{run.ceiling_ms * 1000:,.0f}** |", "",
              f"Ceiling: **{run.ceiling_per_core:,.0f} signings/s per core** "
              f"({run.ceiling_for(run.cores):,.0f}/s on {run.cores} cores).", ""]
    return "\n".join(lines)


def lookups_section(run: Run) -> str:
    lines = [
        LOOKUPS, "",
        "Server-side lookups: `GET /v1/entries?namespace=…&name=…@sha256:…` (what `signer "
        "artifact verify` and the verify action ask), for names signed earlier in the run, "
        "OIDC-authenticated, from the same generator.", "",
        "| store | workers | clients | lookups/s | p50 ms | p99 ms | errors | "
        "service CPU ms/lookup |", "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lk in run.lookups:
        lines.append(f"| {lk.backend} | {lk.workers} | {lk.clients} | {_f(lk.rate)} | "
                     f"{_f(lk.p50_ms, 1)} | {_f(lk.p99_ms, 1)} | {lk.errors} | "
                     f"{_f(lk.server_ms, 2)} |")
    if run.offline:
        o = run.offline
        lines += [
            "", "Offline verification on one core (CPU time), of a real bundle from the "
            "service against its `trusted_root.json`:", "",
            "| | bundles/s | ms each |", "|---|---:|---:|",
            f"| as `signer artifact verify --bundle` (read, parse, every step) | "
            f"{_f(o['full_per_second'])} | {_f(1000 / o['full_per_second'], 3)} |",
            f"| the verification steps on a parsed bundle (`Verifier.verify`) | "
            f"{_f(o['verify_per_second'])} | {_f(1000 / o['verify_per_second'], 3)} |",
        ]
    lines.append("")
    return "\n".join(lines)


def scale_section(run: Run) -> str:
    lines = [
        SCALE, "",
        "Rows bulk-loaded with `executemany` (copies of a real signature and its artifact, "
        "one artifact per signature, all in one namespace) into a freshly initialized store; "
        "one client, sequential requests over loopback, 1 worker. *entries*: `GET "
        "/v1/entries` for a random stored name; *list*: `GET /v1/signatures?limit=20` "
        "(newest first).", "",
        "| store | signatures | entries p50 ms | entries p95 ms | list p50 ms | list p95 ms | "
        "load s | measured |", "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in sorted(run.scale, key=lambda s: (s["backend"], s["stored"])):
        lines.append(
            f"| {s['backend']} | {s['stored']:,} | {_f(s['entries_p50_ms'], 1)} | "
            f"{_f(s['entries_p95_ms'], 1)} | {_f(s['list_p50_ms'], 1)} | "
            f"{_f(s['list_p95_ms'], 1)} | {_f(s['load_seconds'], 0)} | "
            f"{s.get('date', run.date)} |")
    lines.append("")
    return "\n".join(lines)


def profile_section(run: Run) -> str:
    lines = [
        PROFILE, "",
        "py-spy at 250 Hz. The service: `record --subprocesses --nonblocking --gil` on its "
        "processes during an extra cell at 32 clients (not one of the measured ones: the "
        "sampler costs some CPU); samples are of the thread holding the GIL, i.e. Python "
        "CPU time — C code that releases the GIL (SQLite executing a statement, libpq "
        "waiting) is not in them. Offline verification: `bench.offline` looping in its own "
        "process under `py-spy record`. Shares are of all samples; *inclusive* counts a "
        "function once per sample wherever it is on the stack.", "",
    ]
    for p in run.profiles:
        lines += [f"### {p['what']}: {p['samples']:,} samples", "",
                  "| self time by package | share |", "|---|---:|"]
        lines += [f"| {k} | {v:.1%} |" for k, v in p["by_package"]]
        lines += ["", "| our function, inclusive | share |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.1%} |" for k, v in p["by_function"]]
        lines += ["", "| hottest functions, self time | share |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.1%} |" for k, v in p["hottest"]]
        lines.append("")
    if not run.profiles:
        lines += ["(no profile in this run: py-spy missing, or `--quick`)", ""]
    return "\n".join(lines)


def logcost_section(run: Run) -> str:
    lines = [
        LOGCOST, "",
        "`python -m bench --parts log` (`bench/logcost.py`): the service layer in-process (no "
        "HTTP), the same calls the two routes make, from N threads; once with the CT log "
        "and the signature log (batched sequencers: Merkle nodes, checkpoint, promise, "
        "proof), once with a stand-in that writes the same rows in one transaction per "
        "request and logs nothing. Best of two interleaved rounds each.", "",
        "| store | threads | with the logs /s | without /s | with ÷ without | CPU ms with | "
        "CPU ms without |", "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run.logcost:
        lines.append(f"| {r['backend']} | {r['threads']} | {_f(r['with_log'])} | "
                     f"{_f(r['without_log'])} | {r['with_log'] / r['without_log']:.0%} | "
                     f"{_f(r['with_log_ms'], 2)} | {_f(r['without_log_ms'], 2)} |")
    if not run.logcost:
        lines.append("| (not measured in this run) | | | | | | |")
    lines.append("")
    return "\n".join(lines)


def markdown(run: Run) -> dict[str, str]:
    return {RESULTS: results_section(run), CEILING: ceiling_section(run),
            LOOKUPS: lookups_section(run), SCALE: scale_section(run),
            PROFILE: profile_section(run), LOGCOST: logcost_section(run)}


# -- files ------------------------------------------------------------------------------------
def carry_over(run: Run, path: Path = DATA) -> None:
    """Keep earlier figures for what this run did not measure: parts left out with
    ``--parts``, and store sizes (1 M without ``--million``), each with its own date."""
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        return
    if not run.ceiling:
        run.ceiling = previous.get("ceiling", [])
    if not run.logcost:
        run.logcost = previous.get("logcost", [])
    if not run.cells and not run.lookups:
        run.cells = [Cell(**c) for c in previous.get("cells", [])]
        run.lookups = [Lookup(**lk) for lk in previous.get("lookups", [])]
        run.offline = run.offline or previous.get("offline", {})
        measured = {p["what"] for p in run.profiles}  # --parts offline: its own profile
        run.profiles += [p for p in previous.get("profiles", []) if p["what"] not in measured]
    have = {(s["backend"], s["stored"]) for s in run.scale}
    for s in previous.get("scale", []):
        if (s["backend"], s["stored"]) not in have:
            run.scale.append({**s, "date": s.get("date", previous.get("date", "?"))})


def write(run: Run) -> None:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(run)
    for s in data["scale"]:
        s.setdefault("date", run.date)
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    write_sections(markdown(run))
    chart(run, CHART)


def write_sections(sections: dict[str, str], doc: Path = DOC) -> None:
    """Replace our sections (in place, or appended in order); keep everyone else's."""
    existing = doc.read_text() if doc.exists() else "# Benchmarks\n"
    out: list[str] = []
    done: set[str] = set()
    for heading, body in _split(existing):
        if heading in sections:
            if heading not in done:
                out.append(sections[heading])
                done.add(heading)
        else:
            out.append(body)
    out += [text for heading, text in sections.items() if heading not in done]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(part.rstrip("\n") + "\n" for part in out))


def _split(text: str) -> Iterator[tuple[str | None, str]]:
    """(level-2 heading or None, its text through to the next level-2 heading)."""
    heading: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            yield heading, "\n".join(lines)
            heading, lines = line.strip(), [line]
        else:
            lines.append(line)
    yield heading, "\n".join(lines)


def chart(run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, p99_ax, scale_ax) = plt.subplots(1, 3, figsize=(15, 4.6))
    configs = sorted({(c.backend, c.workers) for c in run.cells})
    for backend, workers in configs:
        cells = sorted((c for c in run.cells if (c.backend, c.workers) == (backend, workers)),
                       key=lambda c: c.clients)
        label = f"{backend}, {workers} worker{'s' if workers > 1 else ''}"
        xs = [c.clients for c in cells]
        rate_ax.plot(xs, [c.rate for c in cells], marker="o", label=label)
        p99_ax.plot(xs, [c.p99_ms for c in cells], marker="o", label=label)
    rate_ax.axhline(TARGET_RATE, color="green", linestyle="--", label="target")
    if run.ceiling:
        rate_ax.axhline(run.ceiling_per_core, color="grey", linestyle=":",
                        label="crypto ceiling, 1 core")
    rate_ax.set(title="complete signings/s", xlabel="concurrent clients", xscale="log",
                ylabel="signings/s")
    p99_ax.axhline(TARGET_P99_MS, color="green", linestyle="--", label="target")
    p99_ax.set(title="p99 latency of a complete signing", xlabel="concurrent clients",
               xscale="log", yscale="log", ylabel="ms")
    for backend in sorted({s["backend"] for s in run.scale}):
        rows = sorted((s for s in run.scale if s["backend"] == backend),
                      key=lambda s: s["stored"])
        scale_ax.plot([s["stored"] for s in rows], [s["entries_p50_ms"] for s in rows],
                      marker="o", label=f"{backend}, entries p50")
    scale_ax.set(title="lookup latency by stored signatures", xlabel="stored signatures",
                 xscale="log", yscale="log", ylabel="ms")
    for ax in (rate_ax, p99_ax, scale_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"signer benchmarks, {run.date}, {run.cores} cores (shared machine)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
