"""Action job wall time (issue 14): the sign example's job under act, offline, prebuilt
against built, in one run.

The real service (SQLite) and the fake GitHub token endpoint run on loopback; act runs
``.github/workflows/example-sign-on-release.yml`` (dispatched with a digest) in two copies
of the repository (tests/action/act_env.py):

- **prebuilt**: ``action-image.txt`` pins the image built once beforehand (by its id), as a
  release tag pins the pushed image by digest; the step runs it;
- **built**: no ``action-image.txt``, as on a branch; the step builds the Dockerfile, then
  runs it. act's builds get no network on this engine, so the downloading steps (apt, pip)
  come from the layer cache, warmed first; each built round changes a file under
  ``signer/`` (a new commit), so the package's layers are built for real: a build on a
  runner with a warm cache. A hosted runner starts cold, so the cold build of the same
  context (``docker build --no-cache --network host``, downloads included, base image
  present) is measured too, after the rounds.

Rounds alternate prebuilt and built; each built round first removes act's previous build.
The job's wall time is act's, from its start to its exit after the job succeeded (job
container, checkout, the sign step, the step that shows the signature); the sign step's is
act's own figure for it.

Run: ``python -m bench.action_job [--rounds 3] [--no-write]`` (needs the Docker engine of
scripts/prereqs/30-docker.sh and its local base image); it prints a Markdown table and writes
it to the ``## Action job wall time`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import write_sections
from tests.action.act_env import (
    BUILT_PREFIX,
    act_binary,
    remove_act_leftovers,
    remove_built_images,
    repository_copy,
    run_act,
    warm_build_cache,
)
from tests.action.docker_env import BASE_IMAGE, BUILD_TIMEOUT, build_image, docker, inspect
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, init

SECTION = "## Action job wall time"
WORKFLOW = "example-sign-on-release.yml"
NAME = f"ghcr.io/acme/app@sha256:{hashlib.sha256(b'action job bench').hexdigest()}"
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|µs|us|ns|h|m|s)")  # longest unit first
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class Job:
    kind: str  # "prebuilt" | "built"
    wall: float  # act's start → exit, seconds
    sign_step: float  # act's figure for the sign step (choose, container, clean up)
    container_step: float  # act's figure for the container step (build, if any, and run)
    built: bool  # act's log has its 'docker build' line


def go_seconds(text: str) -> float:
    """A Go duration as act prints it (``1m2.5s``, ``812.3ms``) in seconds."""
    return sum(float(n) * _UNIT[u] for n, u in _GO_DURATION.findall(text))


def step_seconds(log: str, step: str) -> float:
    match = re.search(rf"✅  Success - Main {re.escape(step)} \[([^\]]+)\]", log)
    if match is None:
        raise RuntimeError(f"act's log has no successful step '{step}':\n{log[-3000:]}")
    return go_seconds(match.group(1))


def one_job(kind: str, repo: Path, variables: dict[str, str], env: dict[str, str]) -> Job:
    if kind == "built":
        remove_built_images()
        # A new commit: the package's layers are built again, the downloads stay cached.
        (repo / "signer" / "bench-commit.txt").write_text(uuid.uuid4().hex)
    started = time.monotonic()
    done = run_act(repo, WORKFLOW, {"artifact_name": NAME}, variables, env)
    wall = time.monotonic() - started
    if done.returncode != 0 or "Job succeeded" not in done.stdout:
        raise RuntimeError(f"the {kind} job failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    built = f"docker build -t {BUILT_PREFIX}sign-dockeraction" in done.stdout
    if built != (kind == "built"):
        raise RuntimeError(f"the {kind} job {'built' if built else 'did not build'} an image")
    return Job(kind, wall, step_seconds(done.stdout, "Sign"),
               step_seconds(done.stdout, "signer sign"), built)


def cold_build(repo: Path) -> float:
    """The Dockerfile built without the layer cache, as on a fresh runner (base present)."""
    tag = "signer-action:bench-cold"
    started = time.monotonic()
    docker("build", "--no-cache", "--network", "host", "-t", tag, str(repo),
           timeout=BUILD_TIMEOUT, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    seconds = time.monotonic() - started
    docker("rmi", tag)
    return seconds


def median(jobs: list[Job], kind: str, field: str) -> float:
    return float(statistics.median(getattr(j, field) for j in jobs if j.kind == kind))


def listing(jobs: list[Job], kind: str, field: str) -> str:
    return ", ".join(f"{getattr(j, field):.1f}" for j in jobs if j.kind == kind)


def render(jobs: list[Job], cold: float, rounds: int) -> str:
    pre, built = "prebuilt", "built"
    rows = [
        ("job: act start → signed and exited (s)", "wall"),
        ("— the sign step (choose the image, container, clean up)", "sign_step"),
        ("—— the container step (build, if any, and run)", "container_step"),
    ]
    lines = [SECTION, "",
             f"The sign example's job under act, offline (`python -m bench.action_job`, "
             f"bench/action_job.py says how): {rounds} rounds, prebuilt and built alternately, "
             "in one run; seconds, median (each round).", "",
             "| what | prebuilt (action-image.txt pins the image) | built (no record: the "
             "Dockerfile; downloads cached, the package's layers built) |", "|---|---:|---:|"]
    for label, field in rows:
        lines.append(f"| {label} | **{median(jobs, pre, field):.1f}** "
                     f"({listing(jobs, pre, field)}) | **{median(jobs, built, field):.1f}** "
                     f"({listing(jobs, built, field)}) |")
    warm_build = median(jobs, built, "container_step") - median(jobs, pre, "container_step")
    fresh = median(jobs, built, "wall") - warm_build + cold
    lines += [
        f"| the same Dockerfile built cold (`--no-cache`, apt and PyPI downloads, base "
        f"present) | — | {cold:.1f} |",
        f"| built on a fresh runner, estimated: the built job − its build "
        f"({warm_build:.1f}: its container step − the prebuilt one) + the cold build "
        f"| — | ≈ {fresh:.1f} |", "",
        f"Prebuilt saves {median(jobs, built, 'wall') - median(jobs, pre, 'wall'):.1f} s a job "
        f"against a build with the downloads cached and about "
        f"{fresh - median(jobs, pre, 'wall'):.0f} s against a cold one. Not in these offline "
        "figures: a hosted runner pulls the base image for a build, and the pinned image "
        "(148 MB on the local base) for a prebuilt run.", "",
        f"Machine: {os.cpu_count()} cores shared with other work, load average "
        f"{os.getloadavg()[0]:.1f}; act {act_version()}; base `{BASE_IMAGE}`; "
        f"{datetime.now(UTC):%Y-%m-%d}.", ""]
    return "\n".join(lines)


def act_version() -> str:
    done = subprocess.run([act_binary(), "--version"], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().removeprefix("act version ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if docker("version", check=False, timeout=30).returncode != 0:
        print("no Docker engine at DOCKER_HOST: scripts/prereqs/30-docker.sh", file=sys.stderr)
        return 2
    image, _ = build_image()
    image_id = str(inspect(image)["Id"])
    issuer = FakeGitHubIssuer()
    with tempfile.TemporaryDirectory(prefix="bench-action-job-") as tmp:
        data_dir = Path(tmp) / "data"
        service = Service(data_dir, init(data_dir), issuer.url)
        service.start()
        try:
            tenant = service.tenant()
            variables = {"SIGNER_API_URL": service.url, "SIGNER_NAMESPACE": tenant.namespace}
            env = issuer.runner_env()
            prebuilt = repository_copy(Path(tmp) / "prebuilt" / "repo", image=image_id)
            built = repository_copy(Path(tmp) / "built" / "repo", image=None)
            warm_build_cache(built)
            remove_act_leftovers()
            jobs: list[Job] = []
            order = [("prebuilt", prebuilt), ("built", built)]
            for round_ in range(args.rounds):
                for kind, repo in order if round_ % 2 == 0 else order[::-1]:
                    jobs.append(one_job(kind, repo, variables, env))
                    print(f"round {round_ + 1}: {jobs[-1]}", flush=True)
            remove_built_images()
            cold = cold_build(built)
            print(f"cold build: {cold:.1f} s", flush=True)
        finally:
            service.stop()
            issuer.stop()
            remove_act_leftovers()
    text = render(jobs, cold, args.rounds)
    print(text)
    if not args.no_write:
        write_sections({SECTION: text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
