from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant

ARTIFACT = b"release artifact for sigstore interop\n"


@dataclass
class Signed:
    workdir: Path
    file: Path
    bundle: Path
    config: Path
    root: Path
    identity: str
    issuer: str
    digest: str
    name: str
    ca_key: Path  # the intermediate CA's key: lets a test re-issue a leaf without its SCT


@pytest.fixture
def signed(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, tmp_path: Path) -> Signed:
    """A file signed with the CLI through the OIDC flow, and the exported trust material."""
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(ARTIFACT)
    env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    done = service.cli("artifact", "sign", "--file", str(artifact), "--enable-github-action-token",
                       "--bundle", str(tmp_path / "artifact.sigstore.json"), "--output", "json",
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for args in (["--client-config", "--out", "trust_config.json"], ["--out", "trusted_root.json"]):
        exported = service.cli("trust-root", "export", *args, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
    return Signed(tmp_path, artifact, tmp_path / "artifact.sigstore.json",
                  tmp_path / "trust_config.json", tmp_path / "trusted_root.json",
                  out["identity"], issuer.url, out["digest"], out["name"],
                  service.data_dir / "keys" / "intermediate.key")
