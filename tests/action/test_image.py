"""The real image, run the way the runner runs a Docker container action.

The runner (actions/runner, ContainerActionHandler) starts the container with
``--workdir /github/workspace``, its temp directories mounted at ``/github/home``,
``/github/workflow`` and ``/github/file_commands``, the workspace at ``/github/workspace``,
every variable passed as ``-e NAME`` with host paths translated to those mounts, and the
action's ``args`` after the image. On GitHub-hosted runners the job has its own network; here
``--network host`` lets the container reach the service and the token endpoint on loopback.
The runner also mounts /var/run/docker.sock; the action never uses Docker, and this engine's
socket lives elsewhere, so that mount is left out.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from tests.action.conftest import FakeRunner, Result
from tests.action.docker_env import docker, inspect
from tests.action.test_token_disabled import API_SHA, provenance_of, run_payload
from tests.service_process import clean_env

pytestmark = [pytest.mark.docker, pytest.mark.integration]

DIGEST = hashlib.sha256(b"image test").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"
IDENTITY = "repo:acme/app:ref:refs/tags/v1.2.3"
ENTRYPOINT = ["/opt/signer/bin/python", "/opt/signer/entrypoint.py"]
# The target, on the 123 MB local base (docs/benchmarks.md, "Action image").
MAX_IMAGE_MB = 150


def run_container(runner: FakeRunner, image: str, command: str, token: bool = True,
                  **given: str) -> tuple[Result, float]:
    env = runner.step_env(command, given, token, container=True)
    args = ["docker", "run", "--name", uuid.uuid4().hex, "--label", "signer-action-test",
            "--workdir", "/github/workspace", "--rm"]
    for name in env:
        args += ["-e", name]
    args += ["--network", "host",
             "-v", f"{runner.root / 'home'}:/github/home",
             "-v", f"{runner.root / 'workflow'}:/github/workflow",
             "-v", f"{runner.root / 'file_commands'}:/github/file_commands",
             "-v", f"{runner.workspace}:/github/workspace",
             image, command]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env=clean_env(**env))
    seconds = time.monotonic() - started
    return runner.result(env, done.returncode, done.stdout, done.stderr), seconds


def test_image_shape(action_image: str) -> None:
    meta = inspect(action_image)
    config = meta["Config"]
    assert isinstance(config, dict)
    assert config["Entrypoint"] == ENTRYPOINT, "exec form, absolute path"
    assert not config.get("User"), "the runner's mounted files belong to root"
    assert not config.get("WorkingDir"), "the runner sets --workdir"
    size_mb = int(str(meta["Size"])) / 1e6
    print(f"image size: {size_mb:.1f} MB")
    assert size_mb <= MAX_IMAGE_MB
    probe = docker("run", "--rm", "--entrypoint", "/opt/signer/bin/python", action_image, "-c",
                   "import importlib.util as u, signer.action, github;"
                   "print([m for m in ('pip', 'setuptools', 'signer.service', 'fastapi',"
                   " 'sqlalchemy') if u.find_spec(m)])")
    assert probe.stdout.strip() == "[]", "client side only: no pip, no server code"


def test_a_start_compiles_nothing(action_image: str) -> None:
    """Every module the action can import has its bytecode in the image (pure-Python
    distributions in the zip, the others in __pycache__): with bytecode writing allowed, an
    import of all of them writes no .pyc."""
    name = uuid.uuid4().hex
    done = docker("run", "--name", name, "--label", "signer-action-test", "-e",
                  "PYTHONDONTWRITEBYTECODE=", "--entrypoint", "/opt/signer/bin/python",
                  action_image, "-c", "import signer.action, signer.github_api, github, sys;"
                  "print(sys.modules['github'].__file__)")
    try:
        changed = docker("diff", name).stdout.split()
    finally:
        docker("rm", name)
    assert "site-packages.zip/github/" in done.stdout, "pure Python is read from the zip"
    assert not [p for p in changed if p.endswith(".pyc")], changed


def test_container_sign_verify_revoke(runner: FakeRunner, action_image: str) -> None:
    signed, sign_seconds = run_container(runner, action_image, "sign", artifact_name=NAME)
    assert signed.returncode == 0, signed.log
    assert signed.stdout.startswith("::add-mask::ey")
    outputs = signed.outputs
    assert set(outputs) == {"signature_id", "certificate", "bundle_path"}
    assert outputs["certificate"].startswith("-----BEGIN CERTIFICATE-----\n")
    bundle = runner.workspace / outputs["bundle_path"]
    assert json.loads(bundle.read_text())["mediaType"].startswith(
        "application/vnd.dev.sigstore.bundle"), "the bundle arrives in the host's workspace"
    assert IDENTITY in signed.summary and outputs["signature_id"] in signed.summary

    (runner.workspace / "trusted_root.json").write_bytes(runner.service.admin().trust_root())
    verify = {"artifact_name": NAME, "certificate_oidc_issuer": runner.issuer.url,
              "certificate_identity": IDENTITY, "source_repository": "acme/app",
              "trust_root": "trusted_root.json"}
    verified, _ = run_container(runner, action_image, "verify", **verify)
    assert verified.returncode == 0, verified.log
    assert verified.outputs == {"verified": "true"}

    offline, _ = run_container(runner, action_image, "verify", token=False,
                               bundle_path=outputs["bundle_path"], api_url="", **verify)
    assert offline.returncode == 0, offline.log
    assert "not checked (offline)" in offline.summary

    revoked, _ = run_container(runner, action_image, "revoke", artifact_name=NAME,
                               source_repository_ref="refs/tags/v1.2.3", reason="bad build")
    assert revoked.returncode == 0, revoked.log
    assert revoked.outputs == {"revoked_count": "1"}

    failed, _ = run_container(runner, action_image, "verify", **verify)
    assert failed.returncode == 1
    assert failed.outputs == {"verified": "false"}
    assert "revocation" in failed.errors[0] and "bad build" in failed.errors[0]

    # Container start → signed, a few times (the first run above warmed the page cache).
    times = [sign_seconds]
    for _ in range(3):
        again, seconds = run_container(runner, action_image, "sign", artifact_name=NAME)
        assert again.returncode == 0, again.log
        times.append(seconds)
    print(f"container start → signed: {', '.join(f'{t:.2f}' for t in times)} s "
          f"(median {statistics.median(times):.2f} s)")


def test_container_refusals(runner: FakeRunner, action_image: str) -> None:
    no_token, _ = run_container(runner, action_image, "sign", token=False, artifact_name=NAME)
    assert no_token.returncode == 3
    assert "permissions: id-token: write" in no_token.errors[0]
    tag, _ = run_container(runner, action_image, "sign",
                           artifact_name="ghcr.io/acme/app:latest")
    assert tag.returncode == 2 and "has no digest" in tag.errors[0]
    missing, _ = run_container(runner, action_image, "revoke", artifact_name=NAME)
    assert missing.returncode == 2
    assert "'source_repository_ref' is required" in missing.errors[0]
    assert "Traceback" not in no_token.log + tag.log + missing.log
    assert Path(runner.workspace).is_dir()


class _WorkflowRunAPI(http.server.BaseHTTPRequestHandler):
    """GitHub's REST API as the action's one look-up meets it: GET a workflow run."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        found = self.path == "/repos/acme/app/actions/runs/9876543210"
        body = json.dumps(run_payload() if found else {"message": "Not Found"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_container_reads_the_workflow_run_with_pygithub(runner: FakeRunner,
                                                        action_image: str) -> None:
    """Token disabled, github_token given: PyGithub, loaded from the image's zip, asks the
    GitHub API (here a loopback endpoint at GITHUB_API_URL) for the workflow run."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WorkflowRunAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gh_token = "ghs_containerInstallationToken0123456789"
    try:
        runner.github_env["GITHUB_API_URL"] = f"http://127.0.0.1:{server.server_port}"
        signed, _ = run_container(runner, action_image, "sign", token=False, artifact_name=NAME,
                                  enable_github_action_token="false",
                                  api_key=runner.tenant.api_key, github_token=gh_token)
    finally:
        runner.github_env.pop("GITHUB_API_URL")
        server.shutdown()
        server.server_close()
    assert signed.returncode == 0, signed.log
    assert _WorkflowRunAPI.seen == [("/repos/acme/app/actions/runs/9876543210",
                                     f"token {gh_token}")]
    prov = provenance_of(signed.outputs["certificate"])
    assert (prov.build_config_name, prov.build_config_digest) == ("Release (from the API)",
                                                                  API_SHA)
    assert gh_token not in signed.stdout.split("\n", 2)[2] + signed.summary
