"""Attestations through the real service, verified by gh, sigstore-python and our store.

The fake issuer is declared as a github kind on https://github.com (as an operator with a
GHES or github.com tokens would), so the provenance URLs are the ones gh compares.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, clean_env

GH = str(Path(sys.executable).parent / "gh")
ARTIFACT = b"app release 1.2.3\n"


@pytest.fixture
def attested(github_service: Service, issuer: FakeGitHubIssuer, tmp_path: Path
             ) -> tuple[Service, Tenant, Path]:
    tenant = github_service.tenant()
    (tmp_path / "app.tar.gz").write_bytes(ARTIFACT)
    env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    done = github_service.cli("artifact", "attest", "--file", "app.tar.gz",
                              "--enable-github-action-token", "--bundle", "att.json",
                              "--output", "json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = github_service.cli("trust-root", "export", "--format", "jsonl", "--out",
                             str(tmp_path / "root.jsonl"))
    assert out.returncode == 0, out.stderr
    return github_service, tenant, tmp_path


def gh(workdir: Path, issuer: FakeGitHubIssuer, *args: str, bundle: str = "att.json"
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GH, "attestation", "verify", "app.tar.gz", "--bundle", bundle,
         "--custom-trusted-root", "root.jsonl", "--cert-oidc-issuer", issuer.url, *args],
        capture_output=True, text=True, cwd=workdir, timeout=120,
        env=clean_env(GH_TOKEN="unused", GH_NO_UPDATE_NOTIFIER="1", NO_COLOR="1"))


def test_slsa_provenance_is_built_from_the_token(attested: tuple[Service, Tenant, Path]
                                                 ) -> None:
    _service, _tenant, workdir = attested
    bundle = json.loads((workdir / "att.json").read_text())
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["name"] == "app.tar.gz"
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert definition["externalParameters"]["workflow"] == {
        "ref": "refs/tags/v1.2.3", "repository": "https://github.com/acme/app",
        "path": ".github/workflows/release.yml"}
    assert statement["predicate"]["runDetails"]["builder"]["id"] == (
        "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3")
    kinds = [e["kindVersion"] for e in bundle["verificationMaterial"]["tlogEntries"]]
    assert kinds == [{"kind": "dsse", "version": "0.0.1"}]


def test_gh_attestation_verify_accepts_and_refuses(
        attested: tuple[Service, Tenant, Path], issuer: FakeGitHubIssuer) -> None:
    _service, _tenant, workdir = attested
    workflow = "acme/app/.github/workflows/release.yml"
    for args in (["--owner", "acme"], ["--repo", "acme/app"],
                 ["--owner", "acme", "--signer-workflow", workflow],
                 ["--repo", "acme/app", "--source-ref", "refs/tags/v1.2.3"]):
        done = gh(workdir, issuer, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert gh(workdir, issuer, "--owner", "evil").returncode != 0
    assert gh(workdir, issuer, "--repo", "acme/other").returncode != 0
    # A tampered payload, and an artifact with another digest.
    bundle = json.loads((workdir / "att.json").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "other.tar.gz"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (workdir / "tampered.json").write_text(json.dumps(bundle))
    assert gh(workdir, issuer, "--owner", "acme", bundle="tampered.json").returncode != 0
    (workdir / "app.tar.gz").write_bytes(ARTIFACT + b"x")
    assert gh(workdir, issuer, "--owner", "acme").returncode != 0


def test_predicate_file_is_wrapped_listed_and_revoked(
        github_service: Service, issuer: FakeGitHubIssuer, tmp_path: Path) -> None:
    tenant = github_service.tenant()
    env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    digest = "a" * 64
    name = f"ghcr.io/acme/app@sha256:{digest}"
    (tmp_path / "sbom.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3",
                                                    "name": "app"}))
    done = github_service.cli("artifact", "attest", "--name", name, "--predicate-type",
                              "https://spdx.dev/Document", "--predicate", "sbom.json",
                              "--enable-github-action-token", "--output", "json",
                              cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    att_id = json.loads(done.stdout)["id"]
    found = github_service.get("/v1/attestations", tenant.api_key, params={
        "namespace": tenant.namespace, "name": name,
        "predicate_type": "https://spdx.dev/Document"})
    assert found.status_code == 200, found.text
    [view] = found.json()["attestations"]
    assert (view["id"], view["revoked"]) == (att_id, False)
    key_env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    root = tmp_path / "trusted_root.json"
    assert github_service.cli("trust-root", "export", "--out", str(root)).returncode == 0

    def verify_online() -> subprocess.CompletedProcess[str]:
        return github_service.cli(
            "artifact", "verify", "--name", name, "--predicate-type",
            "https://spdx.dev/Document", "--trust-root", str(root),
            "--certificate-oidc-issuer", issuer.url, "--source-repository-ref",
            "refs/tags/v1.2.3", env=key_env)

    online = verify_online()
    assert online.returncode == 0, online.stdout + online.stderr
    assert att_id in online.stdout
    # Forged SLSA provenance is refused: the token decides it, and nothing is stored.
    (tmp_path / "forged.json").write_text(json.dumps({"buildDefinition": {
        "buildType": "https://actions.github.io/buildtypes/workflow/v1"},
        "runDetails": {"builder": {"id": "https://github.com/evil/x"}}}))
    forged = github_service.cli("artifact", "attest", "--name", name, "--predicate-type",
                                "https://slsa.dev/provenance/v1", "--predicate", "forged.json",
                                "--enable-github-action-token", cwd=tmp_path, env=env)
    assert forged.returncode != 0
    assert "not what your credentials prove" in forged.stderr, forged.stderr
    missing = github_service.get("/v1/attestations", tenant.api_key, params={
        "namespace": tenant.namespace, "name": name,
        "predicate_type": "https://slsa.dev/provenance/v1"})
    assert missing.status_code == 404
    assert "attest it first" in missing.json()["detail"] + missing.json().get("fix", "")
    revoked = github_service.cli("artifact", "revoke-signature", "--name", name,
                                 "--source-repository-ref", "refs/tags/v1.2.3", "--output",
                                 "json", env={"SIGNER_API_KEY": tenant.api_key,
                                              "SIGNER_NAMESPACE": tenant.namespace})
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_count"] == 1
    again = github_service.get("/v1/attestations", tenant.api_key, params={
        "namespace": tenant.namespace, "name": name})
    assert again.json()["attestations"][0]["revoked"] is True
    # The gate refuses it now, at the revocation step.
    refused = verify_online()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "revoked" in (refused.stdout + refused.stderr).lower()


def test_oversized_predicate_is_a_clear_413(github_service: Service) -> None:
    tenant = github_service.tenant()
    body = {"namespace": tenant.namespace, "name": f"x@sha256:{'b' * 64}",
            "certificate": "", "envelope": "A" * (13 * 1024 * 1024)}
    response = github_service.post("/v1/attestations", tenant.api_key, json=body)
    assert response.status_code == 413
    assert "MAX_STATEMENT_BYTES" in response.json()["detail"] + response.json().get("fix", "")


def sigstore_verify(workdir: Path, issuer: FakeGitHubIssuer, identity: str,
                    bundle: str = "att.json") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "sigstore"), "--trust-config", "config.json",
         "verify", "identity", "app.tar.gz", "--bundle", bundle, "--cert-identity", identity,
         "--cert-oidc-issuer", issuer.url, "--offline"],
        capture_output=True, text=True, cwd=workdir, timeout=120, env=clean_env())


def test_sigstore_python_accepts_and_refuses(
        attested: tuple[Service, Tenant, Path], issuer: FakeGitHubIssuer) -> None:
    service, _tenant, workdir = attested
    out = service.cli("trust-root", "export", "--client-config", "--out",
                      str(workdir / "config.json"))
    assert out.returncode == 0, out.stderr
    workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
    for identity in (workflow, "repo:acme/app:ref:refs/tags/v1.2.3"):
        done = sigstore_verify(workdir, issuer, identity)
        assert done.returncode == 0, (identity, done.stdout, done.stderr)
    assert sigstore_verify(workdir, issuer, "repo:evil/app:ref:x").returncode != 0
    bundle = json.loads((workdir / "att.json").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (workdir / "tampered.json").write_text(json.dumps(bundle))
    assert sigstore_verify(workdir, issuer, workflow, "tampered.json").returncode != 0
    (workdir / "app.tar.gz").write_bytes(ARTIFACT + b"x")
    assert sigstore_verify(workdir, issuer, workflow).returncode != 0


def _sign_in(service: Service, api_key: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{service.url}/ui/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text[:500]
    done = browser.post(f"{service.url}/ui/sign-in", timeout=30, allow_redirects=False, data={
        "api_key": api_key, "csrf_token": csrf.group(1), "next": "/ui/artifacts"})
    assert done.status_code == 303, done.text[:500]
    return browser


def test_the_page_shows_attestations_beside_signatures(
        attested: tuple[Service, Tenant, Path]) -> None:
    service, tenant, workdir = attested
    browser = _sign_in(service, tenant.api_key)
    listing = browser.get(f"{service.url}/ui/artifacts", timeout=30)
    artifact = re.search(r'href="/ui/artifacts/([0-9a-f]{32})"', listing.text)
    assert artifact, listing.text[:2000]
    page = browser.get(f"{service.url}/ui/artifacts/{artifact.group(1)}", timeout=30)
    assert "Attestations" in page.text and "https://slsa.dev/provenance/v1" in page.text
    att = re.search(r'href="/ui/attestations/([0-9a-f]{32})"', page.text)
    assert att, page.text[:3000]
    details = browser.get(f"{service.url}/ui/attestations/{att.group(1)}", timeout=30)
    assert details.status_code == 200
    text = html.unescape(details.text)
    assert "Build provenance (SLSA v1)" in text
    assert "https://actions.github.io/buildtypes/workflow/v1" in text
    assert "External parameter workflow.path" in text
    # Both identities of the leaf: the job's workflow, then the token's subject.
    assert ("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
            in text and "repo:acme/app:ref:refs/tags/v1.2.3" in text)
    download = browser.get(f"{service.url}/ui/attestations/{att.group(1)}/bundle", timeout=30)
    assert download.status_code == 200
    assert download.json() == json.loads((workdir / "att.json").read_text())
    assert ".intoto.sigstore.json" in download.headers["Content-Disposition"]


def test_an_sbom_of_a_few_megabytes_is_stored_once(
        github_service: Service, issuer: FakeGitHubIssuer, tmp_path: Path) -> None:
    tenant = github_service.tenant()
    env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    packages = [{"SPDXID": f"SPDXRef-Package-{i}", "name": f"package-{i}",
                 "versionInfo": f"1.{i}.0", "downloadLocation": "NOASSERTION",
                 "licenseConcluded": "Apache-2.0"} for i in range(30_000)]
    (tmp_path / "sbom.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3",
                                                    "packages": packages}))
    size = (tmp_path / "sbom.json").stat().st_size
    assert size > 4 * 1024 * 1024
    name = f"ghcr.io/acme/big@sha256:{'d' * 64}"
    done = github_service.cli("artifact", "attest", "--name", name, "--predicate-type",
                              "https://spdx.dev/Document", "--predicate", "sbom.json",
                              "--bundle", "big.json", "--enable-github-action-token",
                              cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    [(payload_size, bundle_size)] = github_service.sql(
        "SELECT payload_size, length(bundle) FROM attestations WHERE name = 'ghcr.io/acme/big'")
    # Stored once: the bundle holds the envelope (base64), the log entry only hashes.
    assert 4 * 1024 * 1024 < payload_size < bundle_size < payload_size * 4 // 3 + 64 * 1024
    [(body_size,)] = github_service.sql(
        "SELECT max(length(body)) FROM log_entries WHERE kind = 'dsse'")
    assert body_size < 4096


JS_VERIFY = Path(__file__).parents[1] / "interop" / "js" / "verify.mjs"


def js_verify(service: Service, workdir: Path, identity: str, issuer: FakeGitHubIssuer,
              bundle: str = "att.json") -> subprocess.CompletedProcess[str]:
    root = workdir / "trusted_root.json"
    if not root.exists():
        out = service.cli("trust-root", "export", "--out", str(root))
        assert out.returncode == 0, out.stderr
    return subprocess.run(
        ["node", "--no-warnings", str(JS_VERIFY), str(root), str(workdir / bundle),
         str(workdir / "app.tar.gz"), identity, issuer.url],
        capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("node") is None or not (
    JS_VERIFY.parent / "node_modules" / "@sigstore" / "verify").is_dir(),
    reason="run npm ci in tests/interop/js")
def test_sigstore_js_accepts_and_refuses(attested: tuple[Service, Tenant, Path],
                                         issuer: FakeGitHubIssuer) -> None:
    service, _tenant, workdir = attested
    workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
    done = js_verify(service, workdir, workflow, issuer)
    assert done.returncode == 0, done.stdout + done.stderr
    assert js_verify(service, workdir, "repo:evil/app:ref:x", issuer).returncode == 1
    bundle = json.loads((workdir / "att.json").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (workdir / "tampered.json").write_text(json.dumps(bundle))
    assert js_verify(service, workdir, workflow, issuer, "tampered.json").returncode == 1
