"""SLSA provenance v1 from a token: GitHub's shape as actions/attest-build-provenance writes
it, and the same fields for the other issuer kinds."""

from __future__ import annotations

from signer import slsa
from signer.issuers import Issuer

GITHUB_CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com", "repository": "acme/app",
    "ref": "refs/tags/v1.2.3", "sha": "2f0c" * 10, "event_name": "push",
    "repository_id": "7654321", "repository_owner": "acme", "repository_owner_id": "1234567",
    "runner_environment": "github-hosted", "run_id": "99", "run_attempt": "2",
    "workflow_ref": "acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
    "job_workflow_ref": "acme/tools/.github/workflows/build.yml@refs/heads/main",
}


def test_github_is_the_attest_build_provenance_shape() -> None:
    issuer = Issuer(GITHUB_CLAIMS["iss"], "github", "https://ghe.example.com")
    predicate = slsa.predicate(issuer, GITHUB_CLAIMS,
                               issuer.provenance(GITHUB_CLAIMS, "acme"))
    assert predicate == {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {
                "ref": "refs/tags/v1.2.3", "repository": "https://ghe.example.com/acme/app",
                "path": ".github/workflows/release.yml"}},
            "internalParameters": {"github": {
                "event_name": "push", "repository_id": "7654321",
                "repository_owner_id": "1234567", "runner_environment": "github-hosted"}},
            "resolvedDependencies": [{
                "uri": "git+https://ghe.example.com/acme/app@refs/tags/v1.2.3",
                "digest": {"gitCommit": "2f0c" * 10}}],
        },
        "runDetails": {
            # A reusable workflow builds: the builder is the job's workflow, not the caller.
            "builder": {"id": "https://ghe.example.com/acme/tools/.github/workflows/"
                              "build.yml@refs/heads/main"},
            "metadata": {"invocationId": "https://ghe.example.com/acme/app/actions/runs/99/"
                                         "attempts/2"},
        },
    }


def test_gitlab_has_the_same_fields_under_its_own_build_type() -> None:
    claims = {"iss": "https://gitlab.com", "project_path": "acme/app", "ref": "main",
              "ref_type": "branch", "sha": "ab" * 20, "pipeline_source": "push",
              "ci_config_ref_uri": "gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main",
              "ci_config_sha": "ab" * 20, "job_id": "42", "project_id": "7",
              "namespace_path": "acme", "namespace_id": "3"}
    issuer = Issuer("https://gitlab.com", "gitlab", "https://gitlab.com")
    predicate = slsa.predicate(issuer, claims, issuer.provenance(claims, "acme"))
    definition = predicate["buildDefinition"]
    assert definition["buildType"] == "https://signer.dev/buildtypes/gitlab/v1"
    assert definition["externalParameters"]["source"] == {
        "repository": "https://gitlab.com/acme/app", "ref": "refs/heads/main"}
    assert definition["resolvedDependencies"] == [{
        "uri": "git+https://gitlab.com/acme/app@refs/heads/main",
        "digest": {"gitCommit": "ab" * 20}}]
    assert predicate["runDetails"] == {
        "builder": {"id": "https://gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main"},
        "metadata": {"invocationId": "https://gitlab.com/acme/app/-/jobs/42"}}


def test_buildkite_and_generic_record_only_what_the_token_proves() -> None:
    claims = {"iss": "https://agent.buildkite.com", "build_commit": "cd" * 20,
              "organization_slug": "acme", "pipeline_slug": "app", "build_number": "5",
              "job_id": "j1", "build_source": "webhook"}
    issuer = Issuer("https://agent.buildkite.com", "buildkite", "https://buildkite.com")
    predicate = slsa.predicate(issuer, claims, issuer.provenance(claims, "acme"))
    assert predicate["buildDefinition"]["resolvedDependencies"] == [
        {"digest": {"gitCommit": "cd" * 20}}]
    assert predicate["runDetails"]["metadata"]["invocationId"] == (
        "https://buildkite.com/acme/app/builds/5#j1")
    generic = Issuer("https://idp.example.com", "generic", None)
    bare = slsa.predicate(generic, {"iss": generic.url},
                          generic.provenance({"iss": generic.url}, "acme"))
    assert bare == {"buildDefinition": {"buildType": "https://signer.dev/buildtypes/generic/v1",
                                        "externalParameters": {}},
                    "runDetails": {"builder": {"id": "https://idp.example.com"}}}
