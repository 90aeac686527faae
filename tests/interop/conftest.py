from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.service.config import SIGSTORE_AUDIENCE
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


@dataclass
class Signer:
    """A namespace signing through Sigstore's APIs, with its client config and trust root."""

    tenant: Tenant
    repository: str
    config: Path
    root: Path
    workdir: Path


@pytest.fixture
def owner_tenant(service: Service, tmp_path: Path) -> Signer:
    """A namespace whose policy admits one owner's tokens, and its exported client config."""
    owner = f"own-{uuid.uuid4().hex[:8]}"
    tenant = service.tenant(owner=owner)
    config, root = tmp_path / "trust_config.json", tmp_path / "trusted_root.json"
    done = service.cli("trust-root", "export", "--client-config", "--namespace",
                       tenant.namespace, "--out", str(config))
    assert done.returncode == 0, done.stderr
    done = service.cli("trust-root", "export", "--out", str(root))
    assert done.returncode == 0, done.stderr
    return Signer(tenant, f"{owner}/app", config, root, tmp_path)


def leaf_and_key(service: Service, issuer: FakeGitHubIssuer, signer: Signer
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf through the publicKeyRequest body (sigstore-go, cosign, sigstore-js)."""
    key = ec.generate_private_key(ec.SECP256R1())
    token = issuer.token(aud=SIGSTORE_AUDIENCE, repository=signer.repository)
    subject = f"repo:{signer.repository}:ref:refs/tags/v1.2.3"
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    proof = key.sign(subject.encode(), ec.ECDSA(hashes.SHA256()))
    response = requests.post(
        f"{service.url}/ns/{signer.tenant.namespace}/api/v2/signingCert", timeout=30,
        json={"credentials": {"oidcIdentityToken": token},
              "publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
                                   "proofOfPossession": base64.b64encode(proof).decode()}})
    assert response.status_code == 201, response.text
    chain = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert len(chain) == 3
    return x509.load_pem_x509_certificate(chain[0].encode()), key
