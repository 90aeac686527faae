"""entrypoint.py as the runner starts it, in a faked runner, against the real service."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from cryptography import x509

from signer.verification.verifier import STEPS
from tests.action.conftest import FakeRunner, delimiters, load_action
from tests.fakes.github_oidc import FakeGitHubIssuer

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"action test image").hexdigest()
NAME = f"ghcr.io/acme/app@sha256:{DIGEST}"
IDENTITY = "repo:acme/app:ref:refs/tags/v1.2.3"
MASK = re.compile(r"^::add-mask::(.+)$")


def masked(stdout: str) -> list[str]:
    return [m.group(1) for m in map(MASK.match, stdout.splitlines()) if m]


def trust_root(runner: FakeRunner) -> str:
    """Pin the service's trust root in the workspace, as a repository would commit it."""
    path = runner.workspace / "trusted_root.json"
    path.write_bytes(runner.service.admin().trust_root())
    return "trusted_root.json"


def verify_inputs(runner: FakeRunner, **extra: str) -> dict[str, str]:
    return {"artifact_name": NAME, "certificate_oidc_issuer": runner.issuer.url,
            "certificate_identity": IDENTITY, "source_repository": "acme/app",
            "source_repository_ref": "refs/tags/v1.2.3", "trust_root": trust_root(runner),
            **extra}


def test_sign_verify_revoke_then_verify_fails(runner: FakeRunner) -> None:
    # -- sign
    signed = runner.run("sign", artifact_name=NAME)
    assert signed.returncode == 0, signed.log
    token = masked(signed.stdout)
    assert len(token) == 1 and token[0].count(".") == 2, "the OIDC token (a JWT) is masked"
    assert signed.stdout.splitlines()[0] == f"::add-mask::{token[0]}", "masked before all else"
    for text in (signed.stdout.split("\n", 1)[1], signed.stderr, signed.output_text,
                 signed.summary, signed.env_file):
        assert token[0] not in text
    assert signed.env_file == "", "nothing is exported to later steps"

    outputs = signed.outputs
    assert set(outputs) == {"signature_id", "certificate", "bundle_path"}
    marks = delimiters(signed.output_text)
    assert len(marks) == 3 == len(set(marks))
    assert all(re.fullmatch(r"ghadelimiter_[0-9a-f-]{36}", m) for m in marks)
    assert re.fullmatch(r"[0-9a-f]{32}", outputs["signature_id"])
    cert = x509.load_pem_x509_certificate(outputs["certificate"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # A github-kind leaf names the job's workflow first (as Fulcio), then the token's subject.
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris[-1] == IDENTITY and uris[0].endswith("/.github/workflows/release.yml@refs/tags/v1.2.3")
    assert outputs["bundle_path"] == f"ghcr.io_acme_app_sha256_{DIGEST}.sigstore.json"
    bundle = json.loads((runner.workspace / outputs["bundle_path"]).read_text())
    assert bundle["mediaType"].startswith("application/vnd.dev.sigstore.bundle")

    summary = signed.summary
    for shown in (NAME, IDENTITY, runner.issuer.url, outputs["signature_id"],
                  "Timestamp (RFC 3161)", "proved by the job's OIDC token",
                  "| Source repository ref | `refs/tags/v1.2.3` |",
                  "| Source repository | `" + runner.issuer.url + "/acme/app` |",
                  "| Build config name | `release` |", "| Provenance source | `token` |"):
        assert shown in summary, shown
    assert re.search(r"\| Timestamp \(RFC 3161\) \| `\d{4}-\d\d-\d\dT", summary)
    assert any(line.startswith("::notice title=signed::") for line in signed.stdout.splitlines())

    # -- verify, with the trust root pinned
    verified = runner.run("verify", **verify_inputs(runner))
    assert verified.returncode == 0, verified.log
    assert verified.outputs == {"verified": "true"}
    assert verified.summary.count("✅ pass") == len(STEPS), verified.summary
    assert "trust root not pinned" not in verified.stdout

    # -- revoke
    revoked = runner.run("revoke", artifact_name="ghcr.io/acme/app",
                         source_repository_ref="refs/tags/v1.2.3", reason="leaked key")
    assert revoked.returncode == 0, revoked.log
    assert revoked.outputs == {"revoked_count": "1"}
    assert "Revoked 1 signature(s)" in revoked.summary and "`leaked key`" in revoked.summary

    # -- verify fails now, at the revocation step, and says so
    failed = runner.run("verify", **verify_inputs(runner))
    assert failed.returncode == 1, failed.log
    assert failed.outputs == {"verified": "false"}
    assert len(failed.errors) == 1
    assert "revocation" in failed.errors[0] and "leaked key" in failed.errors[0]
    assert "revoked: build and sign a fixed release" in failed.errors[0]
    assert re.search(r"\| \d+\. revocation \| ❌ fail: `revoked by .*: leaked key", failed.summary)
    assert "## ❌ signer verify failed" in failed.summary


def test_verify_without_pinned_trust_root_warns(runner: FakeRunner) -> None:
    assert runner.run("sign", artifact_name=NAME).returncode == 0
    inputs = verify_inputs(runner, trust_root="")
    done = runner.run("verify", **inputs)
    assert done.returncode == 0, done.log
    assert "::warning title=trust root not pinned::" in done.stdout
    assert "fetched from the service (not pinned)" in done.summary


def test_verify_offline_bundle(runner: FakeRunner) -> None:
    signed = runner.run("sign", artifact_name=NAME, bundle_path="dist/app.sigstore.json")
    assert signed.returncode == 0, signed.log
    assert signed.outputs["bundle_path"] == "dist/app.sigstore.json"
    done = runner.run("verify", token=False, **verify_inputs(
        runner, bundle_path="dist/app.sigstore.json", api_url=""))
    assert done.returncode == 0, done.log
    assert done.outputs == {"verified": "true"}
    assert "not checked (offline)" in done.summary
    assert not masked(done.stdout), "offline verification asks for no token"


@pytest.mark.parametrize("command", ["sign", "verify", "revoke"])
def test_missing_required_input_is_refused(runner: FakeRunner, command: str) -> None:
    """The runner does not enforce ``required``; every required input of action.yml is ours."""
    full = {"sign": {"artifact_name": NAME},
            "verify": {"artifact_name": NAME, "certificate_oidc_issuer": runner.issuer.url},
            "revoke": {"artifact_name": NAME, "source_repository_ref": "refs/tags/v1"}}[command]
    required = [n for n, s in load_action(command)["inputs"].items() if s.get("required")]
    assert required
    before = runner.issuer.requests.count("/runner/token")
    for name in required:
        done = runner.run(command, **{**full, name: ""})
        assert done.returncode == 2, (name, done.log)
        assert done.errors == [done.stdout.splitlines()[-1]]
        assert f"The input '{name}' is required" in done.errors[0]
        assert f"Add '{name}: " in done.errors[0]
        assert f"**What happened:** The input '{name}' is required" in done.summary
        assert done.output_text == ""
        assert "Traceback" not in done.log
    assert runner.issuer.requests.count("/runner/token") == before, "no token before validation"


def test_boolean_input_is_validated(runner: FakeRunner) -> None:
    done = runner.run("sign", artifact_name=NAME, enable_github_action_token="yes")
    assert done.returncode == 2
    assert "'enable_github_action_token' is 'yes', which is not a boolean" in done.errors[0]


def test_tag_instead_of_digest_is_refused(runner: FakeRunner) -> None:
    before = runner.issuer.requests.count("/runner/token")
    done = runner.run("sign", artifact_name="ghcr.io/acme/app:v1.2.3")
    assert done.returncode == 2
    assert len(done.errors) == 1
    assert "has no digest" in done.errors[0]
    assert "steps.push.outputs.digest" in done.errors[0]
    assert "docker buildx imagetools inspect" in done.summary
    assert runner.issuer.requests.count("/runner/token") == before


def test_no_id_token_permission(runner: FakeRunner) -> None:
    """Without ``id-token: write`` the runner sets no token request variables at all."""
    done = runner.run("sign", token=False, artifact_name=NAME)
    assert done.returncode == 3
    assert len(done.errors) == 1
    assert "permissions: id-token: write" in done.errors[0]
    assert "forks never get an OIDC token" in done.errors[0]
    assert "```yaml\npermissions:\n  id-token: write" in done.summary
    assert done.output_text == ""
    assert "Traceback" not in done.log


def test_runner_refuses_the_token_request(runner: FakeRunner) -> None:
    runner.issuer.runner_allowed = False
    done = runner.run("sign", artifact_name=NAME)
    assert done.returncode == 3
    assert "refused the OIDC token request (403)" in done.errors[0]
    assert "permissions: id-token: write" in done.errors[0]


def test_fork_pull_request_is_told_why(runner: FakeRunner) -> None:
    runner.event_name = "pull_request"
    runner.event = {"pull_request": {
        "head": {"repo": {"full_name": "mallory/app", "fork": True}},
        "base": {"repo": {"full_name": "acme/app", "fork": False}}}}
    done = runner.run("sign", token=False, artifact_name=NAME)
    assert done.returncode == 3
    assert "pull request from the fork 'mallory/app'" in done.errors[0]
    assert "never gives pull requests from forks an OIDC token" in done.errors[0]
    assert "permissions: id-token: write" in done.errors[0]


def test_wrong_issuer(runner: FakeRunner) -> None:
    # Signing: the expected issuer contradicts the token's, and the service refuses.
    refused = runner.run("sign", artifact_name=NAME,
                         certificate_oidc_issuer="https://token.actions.githubusercontent.com")
    assert refused.returncode == 2, refused.log
    assert "input 'certificate_oidc_issuer'" in refused.errors[0]
    assert "contradicts" in refused.errors[0]
    # Verifying: a signature from another issuer does not pass, at the identity step.
    assert runner.run("sign", artifact_name=NAME).returncode == 0
    done = runner.run("verify", **verify_inputs(
        runner, certificate_oidc_issuer="https://token.actions.githubusercontent.com"))
    assert done.returncode == 1
    assert done.outputs == {"verified": "false"}
    assert "identity and provenance" in done.errors[0]
    assert "Compare certificate_oidc_issuer" in done.errors[0]
    assert re.search(r"\| \d+\. identity and provenance \| ❌ fail", done.summary)
    assert "— not reached" in done.summary


def test_policy_refuses_another_owner(runner: FakeRunner) -> None:
    runner.issuer.runner_claims = {"repository": "evil/app", "repository_owner": "evil"}
    done = runner.run("sign", artifact_name=NAME)
    assert done.returncode == 3, done.log
    assert len(done.errors) == 1 and "Traceback" not in done.log


def test_nothing_to_verify(runner: FakeRunner) -> None:
    other = f"ghcr.io/acme/other@sha256:{'0' * 64}"
    done = runner.run("verify", **verify_inputs(runner, artifact_name=other))
    assert done.returncode == 1
    assert len(done.errors) == 1 and "No signature" in done.errors[0]
    assert done.outputs == {"verified": "false"}


def test_revoke_nothing_warns(runner: FakeRunner) -> None:
    done = runner.run("revoke", artifact_name="ghcr.io/acme/none",
                      source_repository_ref="refs/tags/v0")
    assert done.returncode == 0, done.log
    assert done.outputs == {"revoked_count": "0"}
    assert "::warning title=nothing revoked::" in done.stdout


def test_unknown_command(runner: FakeRunner, issuer: FakeGitHubIssuer) -> None:
    import subprocess
    import sys

    from tests.action.conftest import ENTRYPOINT

    done = subprocess.run([sys.executable, str(ENTRYPOINT), "publish"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2
    assert done.stdout.startswith("::error title=signer action::Unknown command 'publish'")


def test_verify_offline_with_another_instances_trust_root(runner: FakeRunner) -> None:
    """trust_root takes any Sigstore trust root: a Sigstore staging bundle (Rekor v2, email
    identity) against the ClientTrustConfig sigstore-python pins for it, no service asked."""
    import shutil
    from pathlib import Path

    assets = Path(__file__).resolve().parents[1] / "assets" / "sigstore-python"
    shutil.copy(assets / "staging-rekor-v2.txt.sigstore.json", runner.workspace / "b.json")
    shutil.copy(assets / "staging-but-sign-with-rekor-v2.json", runner.workspace / "root.json")
    digest = "15f67246115921bb7c1de0e7e9e9275c8016dc254a0c009888944b7ed3644aaa"
    done = runner.run("verify", token=False, artifact_name=f"staging.txt@sha256:{digest}",
                      certificate_oidc_issuer="https://github.com/login/oauth",
                      certificate_identity="jku@goto.fi", bundle_path="b.json",
                      trust_root="root.json", api_url="")
    assert done.returncode == 0, done.log
    assert done.outputs == {"verified": "true"}


def test_verify_an_attestation_offline_with_its_predicate_type(runner: FakeRunner) -> None:
    import shutil
    from pathlib import Path

    assets = Path(__file__).resolve().parents[1] / "assets"
    meta = json.loads((assets / "verification.meta.json").read_text())
    shutil.copy(assets / "corpus/dsse-rekor-v1-dsse.sigstore.json", runner.workspace / "a.json")
    shutil.copy(assets / "corpus/trusted_root.json", runner.workspace / "root.json")
    inputs = {"artifact_name": f"app.tar.gz@sha256:{meta['digest']}",
              "certificate_oidc_issuer": meta["issuer"], "certificate_identity": meta["identity"],
              "bundle_path": "a.json", "trust_root": "root.json", "api_url": ""}
    refused = runner.run("verify", token=False, **inputs)
    assert refused.returncode == 1, refused.log
    assert "pass --predicate-type" in refused.summary or "predicate_type" in refused.summary
    done = runner.run("verify", token=False, predicate_type="https://slsa.dev/provenance/v1",
                      **inputs)
    assert done.returncode == 0, done.log
    assert done.outputs == {"verified": "true"}
