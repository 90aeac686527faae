"""The Docker side of the action tests: the engine of scripts/prereqs/30-docker.sh, the local
base image, and the action image built from the Dockerfile as the runner builds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "signer-action:test"
BASE_IMAGE = os.environ.get("SIGNER_TEST_BASE_IMAGE", "signer-test-base:bookworm")
BUILD_TIMEOUT = 900
PREREQ = "scripts/prereqs/30-docker.sh (scripts/test sources it)"


def docker(*args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} … failed:\n{done.stdout}\n{done.stderr}")
    return done


def engine_or_skip() -> None:
    if shutil.which("docker") is None:
        pytest.skip(f"no docker client; {PREREQ} installs docker.io")
    done = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"no Docker engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST')}: "
                    f"start it with {PREREQ}: {done.stderr.strip()[:200]}")
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"the local base image {BASE_IMAGE} is missing; {PREREQ} builds it")


def build_image() -> tuple[str, float]:
    """``docker build`` with the legacy builder, as the runner does; cached layers make a
    rebuild take a second or two. Returns the tag and the build's seconds."""
    engine_or_skip()
    started = time.monotonic()
    docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
           "-t", IMAGE, str(ROOT), timeout=BUILD_TIMEOUT,
           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return IMAGE, time.monotonic() - started


def inspect(image: str) -> dict[str, object]:
    return dict(json.loads(docker("image", "inspect", image).stdout)[0])
