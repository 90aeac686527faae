"""Operators declare issuers: the declared kind decides the provenance a token gives, through
the real CLI against the real service, on both stores."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from signer.provenance import FULCIO_ARC, Provenance
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, init

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"gitlab-built artifact").hexdigest()
NAME = f"registry.gitlab.example/acme/app@sha256:{DIGEST}"
# The GitHub claims the fake mints by default; a GitLab token has none of them.
GITHUB_CLAIMS = ("repository", "repository_owner", "repository_owner_id", "repository_id",
                 "repository_visibility", "run_id", "run_number", "run_attempt", "actor",
                 "actor_id", "workflow", "head_ref", "base_ref", "event_name", "workflow_ref",
                 "workflow_sha", "job_workflow_ref", "job_workflow_sha", "check_run_id")


def gitlab_claims(server: str) -> dict[str, Any]:
    """A GitLab CI id_token's claims for acme/app on main (docs.gitlab.com, ID tokens)."""
    host = server.split("://", 1)[1]
    return {
        **dict.fromkeys(GITHUB_CLAIMS), "sub": "project_path:acme/app:ref_type:branch:ref:main",
        "namespace_id": "72", "namespace_path": "acme", "project_id": "20",
        "project_path": "acme/app", "user_id": "1", "user_login": "octo-dev",
        "pipeline_id": "574", "pipeline_source": "push", "job_id": "302", "ref": "main",
        "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
        "runner_id": 1, "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc", "project_visibility": "private",
        "ci_config_ref_uri": f"{host}/acme/app//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    }


@pytest.fixture
def gitlab() -> Iterator[FakeGitHubIssuer]:
    """A second issuer on loopback, minting GitLab-shaped tokens; the service was not started
    with --insecure-issuer for it."""
    fake = FakeGitHubIssuer()
    fake.runner_claims = gitlab_claims(fake.url)
    yield fake
    fake.stop()


def test_declared_gitlab_issuer_gives_gitlab_provenance(
        service: Service, gitlab: FakeGitHubIssuer, workdir: Path) -> None:
    admin = {"SIGNER_API_KEY": service.admin_key}
    namespace = service.tenant().namespace
    policy = ["policy", "add", "--namespace", namespace, "--issuer", gitlab.url, "--claim",
              "namespace_path=acme", "--permissions", "sign,verify"]
    # Undeclared, a plain-http issuer is refused, and the refusal says how to allow it.
    refused = service.cli(*policy, env=admin)
    assert refused.returncode == 2 and "--allow-http" in refused.stderr

    added = service.cli("issuer", "add", "--url", gitlab.url, "--type", "gitlab",
                        "--allow-http", "--output", "json", env=admin)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) | {"created_at": None} == {
        "url": gitlab.url, "type": "gitlab", "server_url": gitlab.url, "allow_http": True,
        "created_at": None, "created_by": "apikey:*/admin"}
    assert service.cli(*policy, env=admin).returncode == 0

    signed = service.cli("artifact", "sign", "--name", NAME, "--enable-github-action-token",
                         "--output", "json", cwd=workdir,
                         env={**gitlab.runner_env(), "SIGNER_NAMESPACE": namespace})
    assert signed.returncode == 0, signed.stderr
    out = json.loads(signed.stdout)
    cert = x509.load_pem_x509_certificate(out["certificate"].encode())
    config = f"https://{gitlab.url.split('://')[1]}/acme/app//.gitlab-ci.yml@refs/heads/main"
    sha = "714a629c0b401fdce83e847fc9589983fc6f46bc"
    assert Provenance.from_certificate(cert) == Provenance(
        issuer=gitlab.url, build_signer_uri=config, build_signer_digest=sha,
        runner_environment="gitlab-hosted", source_repository=f"{gitlab.url}/acme/app",
        source_repository_digest=sha, source_repository_ref="refs/heads/main",
        source_repository_identifier="20", source_repository_owner=f"{gitlab.url}/acme",
        source_repository_owner_identifier="72", build_config_uri=config,
        build_config_digest=sha, build_trigger="push",
        run_invocation_uri=f"{gitlab.url}/acme/app/-/jobs/302", namespace=namespace,
        provenance_source="token")
    present = {e.oid.dotted_string for e in cert.extensions}
    assert f"{FULCIO_ARC}.1" in present  # the legacy issuer, which sigstore-python reads
    assert not present & {f"{FULCIO_ARC}.{n}" for n in range(2, 7)}  # GitHub's legacy ones
    assert out["identity"] == "project_path:acme/app:ref_type:branch:ref:main"

    verified = service.cli("artifact", "verify", "--name", NAME, "--certificate-oidc-issuer",
                           gitlab.url, "--certificate-identity", out["identity"],
                           "--source-repository", "acme/app",
                           "--source-repository-ref", "refs/heads/main", cwd=workdir,
                           env={**gitlab.runner_env(), "SIGNER_NAMESPACE": namespace,
                                "SIGNER_ENABLE_GITHUB_ACTION_TOKEN": "true"})
    assert verified.returncode == 0, verified.stderr

    listed = service.cli("issuer", "list", env=admin)
    assert f"{gitlab.url}  gitlab  {gitlab.url}  allow-http" in listed.stdout
    removed = service.cli("issuer", "remove", "--url", gitlab.url, env=admin)
    assert removed.returncode == 0, removed.stderr
    assert gitlab.url not in service.cli("issuer", "list", env=admin).stdout
    # Removed, it is an undeclared plain-http issuer again: its tokens are refused.
    again = service.cli("artifact", "sign", "--name", NAME, "--enable-github-action-token",
                        cwd=workdir, env={**gitlab.runner_env(), "SIGNER_NAMESPACE": namespace})
    assert again.returncode == 2 and "not an https URL" in again.stderr


def test_issuer_declarations_are_refused_with_a_reason(service: Service) -> None:
    admin = {"SIGNER_API_KEY": service.admin_key}
    tenant = service.tenant(permissions="sign,verify,revoke,admin")
    body = {"url": "https://gitlab.example.com", "type": "gitlab"}
    # Only the server admin key: a namespace admin may not say what an issuer's claims mean.
    forbidden = service.post("/v1/issuers", tenant.api_key, json=body)
    assert forbidden.status_code == 403
    assert "server admin" in forbidden.json()["detail"]
    assert service.get("/v1/issuers", tenant.api_key).status_code == 403
    assert service.post("/v1/issuers", json=body).status_code == 401

    bad_type = service.post("/v1/issuers", service.admin_key, json=body | {"type": "jenkins"})
    assert bad_type.status_code == 400
    assert "github, gitlab, buildkite, generic" in bad_type.json()["detail"]
    cli_bad_type = service.cli("issuer", "add", "--url", body["url"], "--type", "jenkins",
                               env=admin)
    assert cli_bad_type.returncode == 2 and "jenkins" in cli_bad_type.stderr
    server_for_buildkite = service.post("/v1/issuers", service.admin_key, json={
        "url": "https://buildkite.example", "type": "buildkite",
        "server_url": "https://buildkite.example"})
    assert server_for_buildkite.status_code == 400
    assert "takes no server URL" in server_for_buildkite.json()["detail"]
    http = service.post("/v1/issuers", service.admin_key,
                        json={"url": "http://127.0.0.1:1", "type": "generic"})
    assert http.status_code == 400 and "--allow-http" in http.json()["detail"]
    unknown_field = service.post("/v1/issuers", service.admin_key, json=body | {"kind": "x"})
    assert unknown_field.status_code == 422

    url = f"https://gitlab-{tenant.namespace}.example"
    first = service.cli("issuer", "add", "--url", url, "--type", "gitlab", env=admin)
    assert first.returncode == 0, first.stderr
    duplicate = service.post("/v1/issuers", service.admin_key, json={"url": url,
                                                                    "type": "github"})
    assert duplicate.status_code == 409 and "already declared" in duplicate.json()["detail"]
    cli_duplicate = service.cli("issuer", "add", "--url", url, "--type", "gitlab", env=admin)
    assert cli_duplicate.returncode == 2 and "already declared" in cli_duplicate.stderr

    delete = requests.delete(f"{service.url}/v1/issuers", params={"url": url}, timeout=30,
                             headers={"Authorization": f"Bearer {service.admin_key}"})
    assert delete.status_code == 204
    missing = service.cli("issuer", "remove", "--url", url, env=admin)
    assert missing.returncode != 0 and "No declared issuer" in missing.stderr


@pytest.mark.parametrize("variable", ["SIGNER_INSECURE_ISSUER", "SIGNER_INSECURE_ISSUERS"])
def test_the_start_time_insecure_issuer_option_reads_both_spellings(
        variable: str, tmp_path: Path, issuer: FakeGitHubIssuer) -> None:
    """SIGNER_INSECURE_ISSUER is click's name for --insecure-issuer; the README used to say
    SIGNER_INSECURE_ISSUERS, which is still read."""
    data = tmp_path / "data"
    other = "http://127.0.0.1:1/other"
    svc = Service(data, init(data), issuer.url, issuer_kind=None, insecure_option=False,
                  env={variable: f"{issuer.url},{other}"})
    svc.start()
    try:
        namespace = svc.tenant().namespace
        for url in (issuer.url, other):
            added = svc.cli("policy", "add", "--namespace", namespace, "--issuer", url,
                            "--claim", "repository_owner=acme", "--permissions", "sign",
                            env={"SIGNER_API_KEY": svc.admin_key})
            assert added.returncode == 0, added.stderr
    finally:
        svc.stop()
