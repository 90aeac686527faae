"""act runs the example workflows offline (tests/action/act_env.py): sign on release
(dispatched with an image digest), the verify gate, the revoke dispatch, and the gate again.

The composite actions run what the copy's ``action-image.txt`` records, as on a release tag:
here the image built once per session, pinned by its id (``sha256:…``, content-addressed like
the release's registry digest, and present locally, so nothing is pulled), and no job builds
an image. Without the file, as on a branch or a fork, the step builds the Dockerfile and runs
that. The token request variables of the fake runner reach the action through ``--env``.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.action.act_env import (
    BUILT_PREFIX,
    built_images,
    image_events,
    remove_act_leftovers,
    remove_built_images,
    repository_copy,
    run_act,
    warm_build_cache,
)
from tests.action.conftest import FakeRunner
from tests.action.docker_env import engine_or_skip, inspect

pytestmark = [pytest.mark.docker, pytest.mark.integration]

DIGEST = hashlib.sha256(b"act example").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"


def act(runner: FakeRunner, repo: Path, workflow: str, inputs: dict[str, str]
        ) -> subprocess.CompletedProcess[str]:
    return run_act(repo, workflow, inputs, {
        "SIGNER_API_URL": runner.service.url, "SIGNER_NAMESPACE": runner.tenant.namespace,
        "SIGNER_OIDC_ISSUER": runner.issuer.url, "SIGNER_TRUST_ROOT": "trusted_root.json"},
        runner.issuer.runner_env())


@pytest.fixture
def act_leftovers_removed() -> Iterator[None]:
    engine_or_skip()
    remove_act_leftovers()
    yield
    remove_act_leftovers()


@pytest.mark.usefixtures("act_leftovers_removed")
def test_act_runs_the_example_workflows(runner: FakeRunner, action_image: str,
                                        tmp_path: Path) -> None:
    """The released image, pinned, runs in every job: nothing is built, nothing pulled."""
    image_id = str(inspect(action_image)["Id"])
    repo = repository_copy(tmp_path / "repo", image=image_id)
    (repo / "trusted_root.json").write_bytes(runner.service.admin().trust_root())
    before = set(built_images())
    started = time.time()

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

    events = image_events(started, time.time())
    logs = signed.stdout + gate.stdout + revoked.stdout + closed.stdout
    for command in ("sign", "verify", "revoke"):
        assert f"signer {command}: running the released image {image_id}" in logs
    assert logs.count(f"docker run image={image_id} ") == 4, "each job ran the pinned image"
    assert "docker build" not in logs, "no job built an image"
    assert set(built_images()) == before
    assert not [e for e in events if e["Action"] == "pull"], "nothing was pulled"
    assert not [e for e in events if e["Action"] == "tag" and str(
        e["Actor"]["Attributes"].get("name", "")).startswith(BUILT_PREFIX)]


@pytest.mark.usefixtures("act_leftovers_removed")
def test_act_builds_the_dockerfile_when_the_ref_has_no_released_image(
        runner: FakeRunner, tmp_path: Path) -> None:
    """A branch or a fork has no action-image.txt: the step builds the Dockerfile, runs it."""
    repo = repository_copy(tmp_path / "repo", image=None)
    warm_build_cache(repo)
    remove_built_images()
    try:
        signed = act(runner, repo, "example-sign-on-release.yml", {"artifact_name": NAME})
        assert signed.returncode == 0, signed.stdout[-4000:] + signed.stderr[-2000:]
        assert "signer sign: this ref has no released image" in signed.stdout
        assert f"docker build -t {BUILT_PREFIX}sign-dockeraction:latest" in signed.stdout
        assert "Job succeeded" in signed.stdout and ".sigstore.json" in signed.stdout
        assert built_images() == [f"{BUILT_PREFIX}sign-dockeraction:latest"]
    finally:
        remove_built_images()  # WARM_IMAGE stays: the next run's cache
