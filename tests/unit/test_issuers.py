"""Issuer kinds: recognition of the well-known URLs, declarations, and each kind's mapping
from a token shaped like that CI's real one into certificate provenance."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer import issuers
from signer.errors import UsageError
from signer.issuers import Issuer
from signer.provenance import BY_KEY, FULCIO_ARC, Provenance
from tests.fakes.github_oidc import FakeGitHubIssuer

NOW = int(time.time())

# GitLab CI id_tokens (docs.gitlab.com, "ID token authentication"), for acme/app on main.
GITLAB_CLAIMS: dict[str, Any] = {
    "iss": "https://gitlab.com", "aud": "signer", "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
    "sub": "project_path:acme/app:ref_type:branch:ref:main",
    "iat": NOW, "nbf": NOW, "exp": NOW + 300,
    "namespace_id": "72", "namespace_path": "acme", "project_id": "20",
    "project_path": "acme/app", "user_id": "1", "user_login": "octo-dev",
    "user_email": "octo-dev@example.com", "user_access_level": "developer",
    "pipeline_id": "574", "pipeline_source": "push", "job_id": "302",
    "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
    "runner_id": 1, "runner_environment": "gitlab-hosted",
    "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc", "project_visibility": "private",
    "ci_config_ref_uri": "gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main",
    "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
}

# A Buildkite agent's OIDC token (buildkite.com/docs, "OIDC"), for build 42 of a pipeline.
BUILDKITE_CLAIMS: dict[str, Any] = {
    "iss": "https://agent.buildkite.com", "aud": "signer",
    "sub": "organization:acme:pipeline:app:ref:refs/heads/main:"
           "commit:9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:build",
    "iat": NOW, "nbf": NOW, "exp": NOW + 300,
    "organization_slug": "acme", "pipeline_slug": "app", "build_number": 42,
    "build_branch": "main", "build_tag": None,
    "build_commit": "9f3182061f1e2cca4702c368cbc039b7dc9d4485", "build_source": "webhook",
    "step_key": "build", "job_id": "0184990a-477b-4fa8-9968-496074483cee",
    "agent_id": "0184990a-4782-42b5-afc1-16715b10b8ff", "runner_environment": "self-hosted",
    "organization_id": "0184990a-f63e-4ad4-8a0c-0e16a6d5e8fa",
    "pipeline_id": "0184990a-5f30-4d0c-98d1-b1e9f1c2d3a4",
}

GITHUB_ONLY = ("build_signer_uri", "build_signer_digest", "source_repository",
               "source_repository_owner", "build_config_uri", "build_config_digest",
               "run_invocation_uri", "build_config_name", "source_repository_identifier",
               "source_repository_owner_identifier")


def github_claims() -> dict[str, Any]:
    """The claims the fake GitHub issuer mints, as github.com's issuer would."""
    fake = FakeGitHubIssuer()
    try:
        return fake.claims(iss="https://token.actions.githubusercontent.com")
    finally:
        fake.stop()


def certificate_with(p: Provenance, legacy: Any) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    from datetime import datetime

    builder = x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(
        x509.Name([])).public_key(key.public_key()).serial_number(1).not_valid_before(
        datetime(2026, 1, 1)).not_valid_after(datetime(2026, 1, 2))
    for ext in p.extensions(legacy):
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256())


def oids(cert: x509.Certificate) -> set[str]:
    return {e.oid.dotted_string for e in cert.extensions}


# -- recognition ------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "kind", "server"), [
    ("https://token.actions.githubusercontent.com", "github", "https://github.com"),
    ("https://token.actions.githubusercontent.com/acme-enterprise", "github",
     "https://github.com"),
    ("https://token.actions.octo.ghe.com", "github", "https://octo.ghe.com"),
    ("https://gitlab.com", "gitlab", "https://gitlab.com"),
    ("https://gitlab.com/", "gitlab", "https://gitlab.com"),
    ("https://agent.buildkite.com", "buildkite", "https://buildkite.com"),
])
def test_well_known_issuers_are_recognised(url: str, kind: str, server: str) -> None:
    issuer = issuers.resolve(url, {})
    assert (issuer.kind, issuer.server_url, issuer.allow_http) == (kind, server, False)


@pytest.mark.parametrize("url", [
    "https://token.actions.githubusercontent.com.evil.example",
    "https://token.actions.githubusercontent.com@evil.example",
    "https://evil.example/token.actions.githubusercontent.com",
    "https://token.actions.githubusercontent.com/acme/extra",
    "https://token.actions.githubusercontent.com:8443",
    "http://token.actions.githubusercontent.com",
    "https://token.actions.octo.ghe.com.evil.example",
    "https://token.actions.a.b.ghe.com",
    "https://gitlab.com.evil.example",
    "https://evilgitlab.com",
    "https://gitlab.example.com",
    "https://ghes.example/_services/token",  # GHES is declared, never guessed from the path
    "https://agent.buildkite.com.evil.example",
])
def test_lookalikes_and_unknown_issuers_are_generic(url: str) -> None:
    issuer = issuers.resolve(url, {})
    assert issuer.kind == "generic" and issuer.server_url is None


def test_a_declaration_wins_and_gets_its_kinds_default_server() -> None:
    ghes = issuers.declare("https://ghes.example/_services/token", "github")
    assert ghes.server_url == "https://ghes.example"
    gitlab = issuers.declare("https://gitlab.example.com/", "gitlab")
    assert (gitlab.url, gitlab.server_url) == ("https://gitlab.example.com",
                                               "https://gitlab.example.com")
    named = issuers.declare("https://oidc.example", "gitlab", "https://git.example/")
    assert named.server_url == "https://git.example"
    generic = issuers.declare("https://gitlab.com", "generic")
    assert issuers.resolve("https://gitlab.com", {generic.url: generic}).kind == "generic"
    assert issuers.declare("https://x.example", "buildkite").server_url == "https://buildkite.com"


def test_plain_http_only_where_the_operator_allowed_it() -> None:
    with pytest.raises(UsageError, match="not an https URL") as refused:
        issuers.declare("http://127.0.0.1:5000", "gitlab")
    assert "--allow-http" in refused.value.fix and "--insecure-issuer" in refused.value.fix
    local = issuers.declare("http://127.0.0.1:5000", "gitlab", allow_http=True)
    assert local.allow_http and local.server_url == "http://127.0.0.1:5000"
    # The start-time --insecure-issuer option allows http for an undeclared (generic) issuer.
    started = issuers.resolve("http://127.0.0.1:6000/", {}, frozenset({"http://127.0.0.1:6000"}))
    assert (started.kind, started.allow_http) == ("generic", True)
    assert not issuers.resolve("http://127.0.0.1:6000", {}).allow_http


@pytest.mark.parametrize(("args", "message"), [
    (("https://x.example", "jenkins"), "not an issuer type"),
    (("https://x.example", "buildkite", "https://buildkite.example"), "takes no server URL"),
    (("https://x.example", "generic", "https://x.example"), "takes no server URL"),
    (("https://x.example", "gitlab", "http://git.example"), "not an https URL"),
    (("ftp://x.example", "generic"), "not an https URL"),
    (("https://x.example?a=b", "generic"), "query"),
    (("https://x.example/\x00", "generic"), "printable"),
])
def test_bad_declarations_say_what_to_change(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        issuers.declare(*args)


# -- mappings ---------------------------------------------------------------------------------
def test_every_mapping_fills_only_provenance_fields() -> None:
    for kind, mapping in issuers.MAPPINGS.items():
        assert set(mapping) <= set(BY_KEY), kind
        assert "namespace" not in mapping and "provenance_source" not in mapping
    assert set(issuers.MAPPINGS) == set(issuers.KINDS)


def test_github_token_maps_as_fulcio_github_workflow() -> None:
    claims = github_claims()
    issuer = issuers.resolve(claims["iss"], {})
    p = issuer.provenance(claims, "acme")
    ref, sha = "refs/tags/v1.2.3", claims["sha"]
    workflow = f"https://github.com/acme/app/.github/workflows/release.yml@{ref}"
    assert p == Provenance(
        issuer="https://token.actions.githubusercontent.com",
        build_signer_uri=workflow, build_signer_digest=sha,
        runner_environment="github-hosted", source_repository="https://github.com/acme/app",
        source_repository_digest=sha, source_repository_ref=ref,
        source_repository_identifier="7654321",
        source_repository_owner="https://github.com/acme",
        source_repository_owner_identifier="1234567",
        build_config_uri=workflow, build_config_digest=sha, build_trigger="push",
        run_invocation_uri="https://github.com/acme/app/actions/runs/9876543210/attempts/1",
        namespace="acme", build_config_name="release", provenance_source="token")
    cert = certificate_with(p, issuer.legacy_claims(claims))
    assert {f"{FULCIO_ARC}.{n}" for n in (1, 2, 3, 4, 5, 6, 15, 17)} <= oids(cert)
    assert Provenance.from_certificate(cert) == p


def test_ghes_and_ghe_com_tokens_point_at_their_own_server() -> None:
    claims = github_claims()
    ghe = issuers.resolve("https://token.actions.octo.ghe.com", {})
    assert ghe.provenance(claims, "a").source_repository == "https://octo.ghe.com/acme/app"
    ghes = issuers.declare("https://ghes.example/_services/token", "github")
    assert ghes.provenance(claims, "a").source_repository_owner == "https://ghes.example/acme"


def test_gitlab_token_maps_as_fulcio_gitlab_pipeline() -> None:
    issuer = issuers.resolve("https://gitlab.com", {})
    p = issuer.provenance(GITLAB_CLAIMS, "acme")
    config = "https://gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main"
    sha = GITLAB_CLAIMS["sha"]
    assert p == Provenance(
        issuer="https://gitlab.com", build_signer_uri=config, build_signer_digest=sha,
        runner_environment="gitlab-hosted", source_repository="https://gitlab.com/acme/app",
        source_repository_digest=sha, source_repository_ref="refs/heads/main",
        source_repository_identifier="20", source_repository_owner="https://gitlab.com/acme",
        source_repository_owner_identifier="72", build_config_uri=config,
        build_config_digest=sha, build_trigger="push",
        run_invocation_uri="https://gitlab.com/acme/app/-/jobs/302",
        namespace="acme", provenance_source="token")
    tag = issuer.provenance(GITLAB_CLAIMS | {"ref": "v1.2.3", "ref_type": "tag"}, "acme")
    assert tag.source_repository_ref == "refs/tags/v1.2.3"
    # No legacy GitHub extensions (1.2–1.6) for a GitLab token; the legacy issuer (1.1) stays.
    cert = certificate_with(p, issuer.legacy_claims(GITLAB_CLAIMS))
    legacy = {f"{FULCIO_ARC}.{n}" for n in range(1, 7)}
    assert oids(cert) & legacy == {f"{FULCIO_ARC}.1"}


def test_self_managed_gitlab_uses_its_own_server() -> None:
    issuer = issuers.declare("https://gitlab.example.com", "gitlab")
    claims = GITLAB_CLAIMS | {"iss": "https://gitlab.example.com"}
    p = issuer.provenance(claims, "acme")
    assert p.source_repository == "https://gitlab.example.com/acme/app"
    assert p.run_invocation_uri == "https://gitlab.example.com/acme/app/-/jobs/302"


def test_buildkite_token_maps_as_fulcio_buildkite_job() -> None:
    issuer = issuers.resolve("https://agent.buildkite.com", {})
    p = issuer.provenance(BUILDKITE_CLAIMS, "acme")
    assert p == Provenance(
        issuer="https://agent.buildkite.com", runner_environment="self-hosted",
        source_repository_digest=BUILDKITE_CLAIMS["build_commit"], build_trigger="webhook",
        run_invocation_uri="https://buildkite.com/acme/app/builds/42"
                           "#0184990a-477b-4fa8-9968-496074483cee",
        namespace="acme", provenance_source="token")


def test_a_generic_issuer_gets_no_github_fields() -> None:
    # Even a token that carries every GitHub claim: the issuer is not known to be GitHub.
    claims = github_claims() | {"iss": "https://oidc.example"}
    issuer = issuers.resolve(claims["iss"], {})
    p = issuer.provenance(claims, "acme")
    assert p == Provenance(issuer="https://oidc.example", namespace="acme",
                           provenance_source="token")
    assert all(getattr(p, key) is None for key in GITHUB_ONLY)
    cert = certificate_with(p, issuer.legacy_claims(claims))
    assert oids(cert) == {f"{FULCIO_ARC}.8", f"{FULCIO_ARC}.1", BY_KEY["namespace"].oid,
                          BY_KEY["provenance_source"].oid}


def test_issuer_is_a_plain_record() -> None:
    assert Issuer("https://x", "generic", None) == issuers.resolve("https://x/", {})
