"""enable_github_action_token: false — an API key signs, and provenance is declared from the
runner's GITHUB_* variables, or from the workflow run the GitHub REST API returns."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
import requests
import responses
from cryptography import x509

from signer import github_api
from signer.action import main
from signer.errors import AuthenticationError, NotFound, PermissionDenied, Unavailable
from signer.provenance import Provenance
from tests.action.conftest import FakeRunner, parse_outputs

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"api key image").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"
RUN_URL = "https://api.github.com/repos/acme/app/actions/runs/9876543210"


def api(url: str) -> re.Pattern[str]:
    """The URL as pygithub requests it: it spells out the default port (':443')."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return re.compile(rf"{scheme}://{re.escape(host)}(:443)?/{re.escape(path)}")
API_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


def run_payload(**overrides: object) -> dict[str, object]:
    """A workflow run as GET /repos/{owner}/{repo}/actions/runs/{id} returns it (abridged)."""
    payload: dict[str, object] = {
        "id": 9876543210, "name": "Release (from the API)", "node_id": "WFR_kwLO",
        "head_branch": "v1.2.3", "head_sha": API_SHA, "path": ".github/workflows/release.yml",
        "display_title": "v1.2.3", "run_number": 42, "event": "push", "status": "in_progress",
        "conclusion": None, "workflow_id": 161335, "check_suite_id": 42, "run_attempt": 1,
        "url": RUN_URL, "html_url": "https://github.com/acme/app/actions/runs/9876543210",
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:01:00Z",
        "run_started_at": "2026-11-01T10:00:00Z",
    }
    payload.update(overrides)
    return payload


def provenance_of(certificate_pem: str) -> Provenance:
    return Provenance.from_certificate(x509.load_pem_x509_certificate(certificate_pem.encode()))


def test_api_key_signs_with_provenance_from_the_runner(runner: FakeRunner) -> None:
    key = runner.tenant.api_key
    done = runner.run("sign", token=False, artifact_name=NAME, enable_github_action_token="false",
                      api_key=key)
    assert done.returncode == 0, done.log
    assert done.stdout.splitlines()[0] == f"::add-mask::{key}", "the key is masked first"
    assert key not in done.stdout.split("\n", 1)[1] + done.stderr + done.summary
    claims = runner.issuer.claims()
    prov = provenance_of(done.outputs["certificate"])
    assert prov.provenance_source == "declared"
    assert prov.issuer == f"{runner.service.url}/auth"
    assert prov.source_repository == "https://github.com/acme/app"
    assert prov.source_repository_owner == "https://github.com/acme"
    assert prov.source_repository_ref == claims["ref"]
    assert prov.source_repository_digest == claims["sha"]
    assert prov.build_config_name == claims["workflow"]
    assert prov.build_config_digest == claims["workflow_sha"]
    assert prov.runner_environment == "github-hosted"
    assert "declared by the API key's holder, not proved by a token" in done.summary
    assert f"apikey:{runner.tenant.namespace}/ci" in done.summary

    # An input wins over the runner's variable.
    again = runner.run("sign", token=False, artifact_name=NAME, enable_github_action_token="false",
                       api_key=key, build_config_name="nightly")
    assert again.returncode == 0, again.log
    assert provenance_of(again.outputs["certificate"]).build_config_name == "nightly"


def test_api_key_missing(runner: FakeRunner) -> None:
    done = runner.run("sign", token=False, artifact_name=NAME, enable_github_action_token="false")
    assert done.returncode == 2
    assert "enable_github_action_token is false and no api_key was given" in done.errors[0]
    assert "secrets.SIGNER_API_KEY" in done.errors[0]


def run_in_process(runner: FakeRunner, monkeypatch: pytest.MonkeyPatch, **given: str
                   ) -> tuple[int, str, dict[str, str], str]:
    """``main()`` in this process, so that ``responses`` sees pygithub's requests."""
    env = runner.step_env("sign", given, token=False)
    for name in [n for n in list(__import__("os").environ) if n.startswith(
            ("GITHUB_", "INPUT_", "ACTIONS_ID_TOKEN", "SIGNER_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(runner.workspace)
    out = io.StringIO()
    code = main(["sign"], stdout=out)
    files = runner.result(env, code, out.getvalue(), "")
    return code, out.getvalue(), files.outputs, files.summary


def test_github_token_reads_the_workflow_run(runner: FakeRunner,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    gh_token = "ghs_fakeInstallationToken0123456789abcdef"
    with responses.RequestsMock() as mock:
        mock.add_passthru(runner.service.url)
        lookup = mock.get(api(RUN_URL), json=run_payload())
        code, stdout, outputs, summary = run_in_process(
            runner, monkeypatch, artifact_name=NAME, enable_github_action_token="false",
            api_key=runner.tenant.api_key, github_token=gh_token)
    assert code == 0, stdout
    assert lookup.call_count == 1
    assert lookup.calls[0].request.headers["Authorization"] == f"token {gh_token}"
    assert stdout.splitlines()[:2] == [f"::add-mask::{runner.tenant.api_key}",
                                       f"::add-mask::{gh_token}"]
    assert gh_token not in stdout.split("\n", 2)[2] + summary
    prov = provenance_of(outputs["certificate"])
    assert prov.build_config_name == "Release (from the API)"
    assert prov.build_config_digest == API_SHA
    assert prov.source_repository_ref == "refs/tags/v1.2.3", "the rest from the runner"
    assert "| Workflow file (GitHub API) | `.github/workflows/release.yml` |" in summary


@pytest.mark.parametrize(("status", "expected"), [
    (404, "GitHub found no workflow run 9876543210 of acme/app"),
    (403, "GitHub denied reading the workflow run"),
    (401, "GitHub refused github_token"),
])
def test_github_token_refused(runner: FakeRunner, monkeypatch: pytest.MonkeyPatch,
                              status: int, expected: str) -> None:
    with responses.RequestsMock() as mock:
        mock.add_passthru(runner.service.url)
        mock.get(api(RUN_URL), status=status, json={"message": "Not Found"})
        code, stdout, outputs, _ = run_in_process(
            runner, monkeypatch, artifact_name=NAME, enable_github_action_token="false",
            api_key=runner.tenant.api_key, github_token="ghs_x")
    assert code in (1, 3)
    errors = [line for line in stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and expected in errors[0], stdout
    assert "permissions: actions: read" in errors[0]
    assert outputs == {}
    assert "Traceback" not in stdout


# -- signer.github_api on its own ------------------------------------------------------------
@responses.activate
def test_workflow_run_fields() -> None:
    responses.get(api("https://ghe.example.com/api/v3/repos/acme/app/actions/runs/7"),
                  json=run_payload(id=7, run_attempt=2))
    run = github_api.workflow_run("t", "acme/app", 7, "https://ghe.example.com/api/v3")
    assert run == github_api.WorkflowRun(
        7, "Release (from the API)", ".github/workflows/release.yml", API_SHA, "v1.2.3",
        "push", 2, "https://github.com/acme/app/actions/runs/9876543210")


@pytest.mark.parametrize(("status", "error"), [
    (401, AuthenticationError), (403, PermissionDenied), (404, NotFound), (502, Unavailable)])
@responses.activate
def test_workflow_run_errors(status: int, error: type[Exception]) -> None:
    responses.get(api(RUN_URL), status=status, json={"message": "nope"})
    with pytest.raises(error):
        github_api.workflow_run("t", "acme/app", 9876543210)


@responses.activate
def test_workflow_run_unreachable() -> None:
    responses.get(api(RUN_URL), body=requests.ConnectionError("refused"))
    with pytest.raises(Unavailable, match="cannot be reached"):
        github_api.workflow_run("t", "acme/app", 9876543210)


def test_outputs_parser_reads_plain_and_delimited() -> None:
    text = "a=1\nb<<EOF\nx\ny\nEOF\n"
    assert parse_outputs(text) == {"a": "1", "b": "x\ny"}
    assert parse_outputs("") == {}
