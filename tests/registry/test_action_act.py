"""act (tests/action/act_env.py) runs a workflow whose first job signs an image in the
loopback registry with ``push_to_registry: true`` and whose second job verifies it with
``bundle_source: registry`` and no service; the registry's credentials are only in Docker's
config.json of each job (``~/.docker/config.json``, as docker/login-action leaves it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.action.act_env import remove_act_leftovers, repository_copy, run_act
from tests.action.docker_env import build_image, engine_or_skip, inspect
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.registry.conftest import PASSWORD, LocalRegistry
from tests.registry.test_action import SECRETS
from tests.registry.test_registry import index_of
from tests.service_process import Service, Tenant

pytestmark = [pytest.mark.registry, pytest.mark.integration, pytest.mark.docker]

WORKFLOW = """\
name: "Example: sign into the registry, verify from it"
on:
  workflow_dispatch:
    inputs:
      artifact_name:
        required: true
        type: string
permissions: {}
jobs:
  sign:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      id-token: write
      packages: write
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - name: Log in to the registry (Docker's config.json, as docker/login-action writes it)
        run: mkdir -p ~/.docker && mv docker-config.json ~/.docker/config.json
      - id: sign
        uses: ./
        with:
          artifact_name: ${{ inputs.artifact_name }}
          namespace: ${{ vars.SIGNER_NAMESPACE }}
          api_url: ${{ vars.SIGNER_API_URL }}
          push_to_registry: true
      - env:
          REFERRER: ${{ steps.sign.outputs.referrer_digest }}
        run: echo "referrer=${REFERRER}"
  deploy:
    needs: sign
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - name: Log in to the registry
        run: mkdir -p ~/.docker && mv docker-config.json ~/.docker/config.json
      - id: verify
        uses: ./verify
        with:
          artifact_name: ${{ inputs.artifact_name }}
          namespace: ${{ vars.SIGNER_NAMESPACE }}
          certificate_oidc_issuer: ${{ vars.SIGNER_OIDC_ISSUER }}
          certificate_identity: repo:acme/app:ref:refs/tags/v1.2.3
          trust_root: trusted_root.json
          bundle_source: registry
      - name: Deploy
        if: steps.verify.outputs.verified == 'true'
        env:
          ARTIFACT: ${{ inputs.artifact_name }}
        run: echo "deploying ${ARTIFACT}"
"""


@pytest.fixture
def act_leftovers_removed() -> Iterator[None]:
    engine_or_skip()
    remove_act_leftovers()
    yield
    remove_act_leftovers()


@pytest.mark.usefixtures("act_leftovers_removed")
def test_act_pushes_from_a_job_with_credentials_in_docker_config(
        service: Service, issuer: FakeGitHubIssuer, tenant: Tenant,
        local_registry: LocalRegistry, tmp_path: Path) -> None:
    image = local_registry.push_image("act-app", "signed from a job\n")
    image_id = str(inspect(build_image()[0])["Id"])
    repo = repository_copy(tmp_path / "repo", image=image_id)
    (repo / ".github" / "workflows" / "registry.yml").write_text(WORKFLOW)
    (repo / "trusted_root.json").write_bytes(service.admin().trust_root())
    shutil.copy2(local_registry.docker_config / "config.json", repo / "docker-config.json")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, capture_output=True)

    done = run_act(repo, "registry.yml", {"artifact_name": image}, {
        "SIGNER_API_URL": service.url, "SIGNER_NAMESPACE": tenant.namespace,
        "SIGNER_OIDC_ISSUER": issuer.url}, issuer.runner_env(), timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert log.count("Job succeeded") == 2
    referrer = re.search(r"referrer=(sha256:[0-9a-f]{64})", done.stdout)
    assert referrer, done.stdout[-4000:]
    assert f"deploying {image}" in done.stdout

    # The referrer is in the tag-schema index, as skopeo reads it from the registry.
    index = index_of(local_registry, image)
    [entry] = [m for m in index["manifests"] if m["digest"] == referrer.group(1)]
    assert entry["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    manifest = json.loads(local_registry.skopeo_raw(
        f"{image.split('@')[0]}@{referrer.group(1)}") or b"{}")
    assert manifest["subject"]["digest"] == image.split("@")[1]

    # The credentials came from the copied config.json, and nothing printed them.
    assert log.count("registry credentials from Docker's config (/root/.docker/config.json)") \
        == 2, "each job's first step copied the runner's config.json"
    assert done.stdout.count("/docker-config/config.json (auths.127.0.0.1:") == 2
    assert "from its registry (credentials: " in done.stdout
    assert PASSWORD not in log
    for secret in SECRETS:
        assert secret not in log
