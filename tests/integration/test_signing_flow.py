"""The keyless loop through the real CLI against the real service: sign, verify, revoke."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"app image manifest").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"


def token_env(issuer: FakeGitHubIssuer, tenant: Tenant) -> dict[str, str]:
    return {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}


def sign_with_token(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, workdir: Path,
                    *extra: str, name: str = NAME) -> dict:
    done = service.cli("artifact", "sign", "--name", name, "--enable-github-action-token",
                       "--output", "json", *extra, cwd=workdir, env=token_env(issuer, tenant))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_api_key_sign_verify_revoke(service: Service, tenant: Tenant, workdir: Path) -> None:
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    signed = service.cli("artifact", "sign", "--name", NAME, "--source-repository", "acme/app",
                         "--source-repository-ref", "refs/heads/main", cwd=workdir, env=env)
    assert signed.returncode == 0, signed.stderr
    sig_id = signed.stdout.strip()
    assert len(sig_id) == 32
    bundle_path = workdir / f"ghcr.io_acme_app_sha256_{DIGEST}.sigstore.json"
    assert json.loads(bundle_path.read_text())["mediaType"].startswith(
        "application/vnd.dev.sigstore.bundle")

    issuer = f"{service.url}/auth"
    verify = ["artifact", "verify", "--name", NAME, "--certificate-oidc-issuer", issuer]
    ok = service.cli(*verify, "--certificate-identity", f"apikey:{tenant.namespace}/ci",
                     "--source-repository", "acme/app", cwd=workdir, env=env)
    assert ok.returncode == 0, ok.stderr
    assert sig_id in ok.stdout

    shown = service.cli("artifact", "show", sig_id, "--output", "json", env=env)
    assert json.loads(shown.stdout)["provenance"]["provenance_source"] == "declared"

    revoked = service.cli("artifact", "revoke-signature", "--name", NAME,
                          "--source-repository-ref", "refs/heads/main", "--reason", "leaked",
                          "--output", "json", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_count"] == 1

    failed = service.cli(*verify, cwd=workdir, env=env)
    assert failed.returncode == 1
    assert "step 9 (revocation)" in failed.stderr and "leaked" in failed.stderr

    listed = json.loads(service.cli("artifact", "list", "--output", "json", env=env).stdout)
    assert [r["revoked"] for r in listed] == [True]


def test_github_token_provenance_and_every_verify_flag(
    service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, workdir: Path
) -> None:
    out = sign_with_token(service, issuer, tenant, workdir,
                          "--source-repository-ref", "refs/tags/v1.2.3")
    assert set(out) >= {"id", "name", "digest", "certificate", "bundle"}
    cert = x509.load_pem_x509_certificate(out["certificate"].encode())
    assert out["identity"] == "repo:acme/app:ref:refs/tags/v1.2.3"
    assert out["provenance"]["source_repository"] == f"{issuer.url}/acme/app"
    assert out["provenance"]["provenance_source"] == "token"
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 300

    sha = issuer.claims()["sha"]
    flags = {
        "--certificate-oidc-issuer": issuer.url,
        "--certificate-identity": "repo:acme/app:ref:refs/tags/v1.2.3",
        "--source-repository": "acme/app",
        "--source-repository-owner": "acme",
        "--source-repository-ref": "refs/tags/v1.2.3",
        "--source-repository-digest": sha,
        "--build-config-digest": sha,
        "--build-config-name": "release",
        "--runner-environment": "github-hosted",
    }
    args = [a for pair in flags.items() for a in pair]
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    ok = service.cli("artifact", "verify", "--name", NAME, *args, env=env)
    assert ok.returncode == 0, ok.stderr

    regexp = service.cli("artifact", "verify", "--name", NAME, "--certificate-oidc-issuer",
                         issuer.url, "--certificate-identity-regexp", r"repo:acme/.*", env=env)
    assert regexp.returncode == 0, regexp.stderr

    # Each flag, made wrong on its own, fails verification and names the field.
    for flag, label in [("--source-repository", "Source repository"),
                        ("--source-repository-ref", "Source repository ref"),
                        ("--build-config-name", "Build config name"),
                        ("--source-repository-owner", "Source repository owner"),
                        ("--runner-environment", "Runner environment")]:
        wrong = dict(flags, **{flag: "acme-evil"})
        bad = service.cli("artifact", "verify", "--name", NAME,
                          *[a for pair in wrong.items() for a in pair], env=env)
        assert bad.returncode == 1, flag
        assert label in bad.stderr and "acme-evil" in bad.stderr

    wrong_issuer = service.cli("artifact", "verify", "--name", NAME,
                               "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
                               env=env)
    assert wrong_issuer.returncode == 1 and "OIDC issuer" in wrong_issuer.stderr
    wrong_id = service.cli("artifact", "verify", "--name", NAME, "--certificate-oidc-issuer",
                           issuer.url, "--certificate-identity", "repo:acme/app:ref:refs/heads/x",
                           env=env)
    assert wrong_id.returncode == 1 and "identity" in wrong_id.stderr


def test_flag_contradicting_the_token_is_refused(
    service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, workdir: Path
) -> None:
    done = service.cli("artifact", "sign", "--name", NAME, "--enable-github-action-token",
                       "--source-repository-ref", "refs/heads/evil", cwd=workdir,
                       env=token_env(issuer, tenant))
    assert done.returncode == 2
    assert "contradicts the OIDC token" in done.stderr and "refs/tags/v1.2.3" in done.stderr
    assert not list(workdir.glob("*.sigstore.json"))


def test_sign_file_and_env_flags(service: Service, tenant: Tenant, workdir: Path) -> None:
    artifact = workdir / "dist.tar.gz"
    artifact.write_bytes(b"release tarball")
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace,
           "SIGNER_FILE": str(artifact), "SIGNER_BUNDLE": str(workdir / "b.json"),
           "SIGNER_OUTPUT": "json"}
    done = service.cli("artifact", "sign", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["digest"] == "sha256:" + hashlib.sha256(b"release tarball").hexdigest()
    assert out["name"].startswith("dist.tar.gz@sha256:")
    ok = service.cli("artifact", "verify", "--file", str(artifact), "--certificate-oidc-issuer",
                     f"{service.url}/auth", env={k: v for k, v in env.items()
                                                 if k != "SIGNER_BUNDLE"})
    assert ok.returncode == 0, ok.stderr
    artifact.write_bytes(b"tampered tarball")
    bad = service.cli("artifact", "verify", "--file", str(artifact), "--name", "dist.tar.gz",
                      "--certificate-oidc-issuer", f"{service.url}/auth",
                      env={"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace})
    assert bad.returncode == 1


def test_offline_verification_and_tampering(
    service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, workdir: Path
) -> None:
    out = sign_with_token(service, issuer, tenant, workdir, "--bundle", "b.sigstore.json")
    assert service.cli("trust-root", "export", "--out", str(workdir / "root.json")).returncode == 0
    offline = ["artifact", "verify", "--name", NAME, "--trust-root", str(workdir / "root.json"),
               "--certificate-oidc-issuer", issuer.url]
    ok = service.cli(*offline, "--bundle", str(workdir / "b.sigstore.json"),
                     env={"SIGNER_API": "http://127.0.0.1:9"})  # offline: the service is not asked
    assert ok.returncode == 0, ok.stderr
    assert "revocation was not checked" in ok.stdout

    original = json.loads((workdir / "b.sigstore.json").read_text())
    tampered_cases = {
        "signature": ("messageSignature", "signature"),
        "digest": ("messageSignature", "messageDigest", "digest"),
    }
    for label, path in tampered_cases.items():
        data = json.loads(json.dumps(original))
        node = data
        for key in path[:-1]:
            node = node[key]
        import base64

        raw = bytearray(base64.b64decode(node[path[-1]]))
        raw[-1] ^= 1
        node[path[-1]] = base64.b64encode(bytes(raw)).decode()
        target = workdir / f"{label}.json"
        target.write_text(json.dumps(data))
        bad = service.cli(*offline, "--bundle", str(target))
        assert bad.returncode == 1, label
        assert "step" in bad.stderr
    assert out["id"]


def test_same_upload_twice_is_one_entry(service: Service, tenant: Tenant) -> None:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.hazmat.primitives.serialization import Encoding

    from signer.client import Client

    client = Client(service.url, tenant.api_key)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    chain = client.issue_certificate(tenant.namespace, csr.public_bytes(Encoding.PEM).decode(),
                                     {})["certificate_chain"]
    sig = key.sign(bytes.fromhex(DIGEST), ec.ECDSA(Prehashed(hashes.SHA256())))
    body = {"namespace": tenant.namespace, "name": NAME, "certificate": chain[0],
            "signature": base64.b64encode(sig).decode()}
    first = service.post("/v1/signatures", tenant.api_key, json=body)
    second = service.post("/v1/signatures", tenant.api_key, json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["bundle"] == second.json()["bundle"]
    assert len(client.list_signatures(tenant.namespace)) == 1
