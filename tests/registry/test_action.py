"""The sign and verify actions with a registry: entrypoint.py in a faked runner
(tests/action/conftest.py) against the real service and the loopback registry, credentials
where the composite step leaves them (a copy of Docker's config.json in the workspace)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.action.conftest import ENTRYPOINT, FakeRunner, Result
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.registry.conftest import PASSWORD, USER, LocalRegistry
from tests.registry.test_registry import index_of, split
from tests.service_process import Service, Tenant, clean_env

pytestmark = [pytest.mark.registry, pytest.mark.integration, pytest.mark.docker]

IDENTITY = "repo:acme/app:ref:refs/tags/v1.2.3"
SLSA = "https://slsa.dev/provenance/v1"
# Where docker-action.sh copies the runner's config.json, relative to the workspace.
COPY = ".github/.tmp/.generated-actions/signer-{}/docker-config"
SECRETS = (PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())


@pytest.fixture
def runner(tmp_path: Path, issuer: FakeGitHubIssuer, service: Service, tenant: Tenant
           ) -> FakeRunner:
    fake = FakeRunner(tmp_path / "runner", issuer, service, tenant)
    (fake.workspace / "trusted_root.json").write_bytes(service.admin().trust_root())
    return fake


def run(runner: FakeRunner, command: str, reg: LocalRegistry | None, **given: str) -> Result:
    """One step; ``reg``: its config.json copied as the composite step copies it."""
    extra = {}
    if reg is not None:
        copy = runner.workspace / COPY.format(command)
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        shutil.copy2(reg.docker_config / "config.json", copy)
        extra["DOCKER_CONFIG"] = COPY.format(command)
    env = runner.step_env(command, given, **extra)
    done = subprocess.run([sys.executable, str(ENTRYPOINT), command], cwd=runner.workspace,
                          env=clean_env(**env), capture_output=True, text=True, timeout=120)
    return runner.result(env, done.returncode, done.stdout, done.stderr)


def secrets_only_masked(result: Result) -> None:
    """The registry's secret appears only in ``::add-mask::`` lines, and those come first."""
    lines = result.stdout.splitlines()
    masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")]
    assert masks == list(range(len(masks))), "masked before anything else is printed"
    for secret in SECRETS:
        assert f"::add-mask::{secret}" in lines
        rest = [line for line in lines if not line.startswith("::add-mask::")]
        for text in ("\n".join(rest), result.stderr, result.output_text, result.summary):
            assert secret not in text


def verify_inputs(image: str, issuer: str, **extra: str) -> dict[str, str]:
    return {"artifact_name": image, "certificate_oidc_issuer": issuer,
            "certificate_identity": IDENTITY, "trust_root": "trusted_root.json",
            "bundle_source": "registry", "api_url": "", **extra}


def test_sign_pushes_and_verify_reads_the_registry(runner: FakeRunner, local_registry:
                                                   LocalRegistry, image: str) -> None:
    signed = run(runner, "sign", local_registry, artifact_name=image, push_to_registry="true")
    assert signed.returncode == 0, signed.log
    secrets_only_masked(signed)
    digest = signed.outputs["referrer_digest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest in [m["digest"] for m in index_of(local_registry, image)["manifests"]]
    assert f"registry credentials: {runner.workspace / COPY.format('sign')}/config.json" \
        in signed.stdout
    assert "### Attached to the image" in signed.summary and digest in signed.summary
    assert any(line.startswith("::notice title=pushed::") for line in signed.stdout.splitlines())

    # No service: api_url is empty, the trust root pinned, the bundles from the registry.
    verified = run(runner, "verify", local_registry, **verify_inputs(image, runner.issuer.url))
    assert verified.returncode == 0, verified.log
    assert verified.outputs == {"verified": "true"}
    secrets_only_masked(verified)
    host, repository, _ = split(image)
    assert f"### ✅ Entry `{host}/{repository}@{digest}`" in verified.summary
    assert "every bundle attached to the image in its registry" in verified.summary
    assert "not checked (offline: bundles from the registry)" in verified.summary

    other = run(runner, "verify", local_registry, **verify_inputs(
        image, runner.issuer.url, certificate_identity="repo:acme/other:ref:refs/tags/v1"))
    assert other.returncode == 1, other.log
    assert other.outputs == {"verified": "false"}
    assert f"### ❌ Entry `{host}/{repository}@{digest}`" in other.summary
    assert "identity and provenance" in other.summary
    [error] = other.errors
    assert "passed verification" in error and "certificate_identity" in error


def test_attest_pushes_and_verify_gates_on_the_predicate_type(
        runner: FakeRunner, local_registry: LocalRegistry) -> None:
    image = local_registry.push_image("app-attest-action", "attested by the action\n")
    attested = run(runner, "attest", local_registry, artifact_name=image,
                   push_to_registry="true")
    assert attested.returncode == 0, attested.log
    secrets_only_masked(attested)
    digest = attested.outputs["referrer_digest"]
    [entry] = [m for m in index_of(local_registry, image)["manifests"]
               if m["digest"] == digest]
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA
    assert "### Attached to the image" in attested.summary

    verified = run(runner, "verify", local_registry, **verify_inputs(
        image, runner.issuer.url, predicate_type=SLSA))
    assert verified.returncode == 0, verified.log
    assert verified.outputs == {"verified": "true"}

    # A file is in no registry: refused before anything is attested.
    (runner.workspace / "app.tar.gz").write_bytes(b"app")
    refused = run(runner, "attest", None, artifact_path="app.tar.gz", push_to_registry="true")
    assert refused.returncode == 2, refused.log
    [error] = refused.errors
    assert "artifact_path is a file" in error and "attestation_id" not in refused.outputs


def test_a_failed_push_keeps_the_signature_and_says_what_to_do(
        runner: FakeRunner, local_registry: LocalRegistry, image: str) -> None:
    wrong = "not the password"
    signed = run(runner, "sign", None, artifact_name=image, push_to_registry="true",
                 registry_username=USER, registry_password=wrong)
    assert signed.returncode == 3, signed.log
    assert signed.stdout.splitlines()[0] == f"::add-mask::{wrong}"
    outputs = signed.outputs
    assert "referrer_digest" not in outputs and re.fullmatch(r"[0-9a-f]{32}",
                                                              outputs["signature_id"])
    assert (runner.workspace / outputs["bundle_path"]).is_file()
    [error] = signed.errors
    for said in (f"Signed (signature {outputs['signature_id']}", "both stay",
                 "permissions: packages: write", "registry_username and registry_password",
                 f"signer artifact push --name {image} --bundle {outputs['bundle_path']}"):
        assert said in error, said
    assert "## ✅ Signed" in signed.summary and "## ❌ signer sign failed" in signed.summary


def test_registry_inputs_are_refused_before_anything_is_signed(
        runner: FakeRunner, local_registry: LocalRegistry, image: str) -> None:
    half = run(runner, "sign", None, artifact_name=image, push_to_registry="true",
               registry_username=USER)
    assert half.returncode == 2 and "signature_id" not in half.outputs
    assert "'registry_username' was given without 'registry_password'" in half.errors[0]
    no_image = run(runner, "sign", None, artifact_name=f"Not/An/Image@{image.split('@')[1]}",
                   push_to_registry="true")
    assert no_image.returncode == 2 and "signature_id" not in no_image.outputs
    unknown = run(runner, "verify", None, **verify_inputs(image, runner.issuer.url,
                                                          bundle_source="oci"))
    assert unknown.returncode == 2 and "none of service, bundle, registry" in unknown.errors[0]
    assert unknown.outputs == {}
    pinless = run(runner, "verify", None, **verify_inputs(image, runner.issuer.url,
                                                          trust_root=""))
    assert pinless.returncode == 2
    assert "offline verification needs trust_root" in pinless.errors[0]


def test_verify_from_a_registry_with_nothing_attached_fails_with_false(
        runner: FakeRunner, local_registry: LocalRegistry) -> None:
    bare = local_registry.push_image("bare", "nothing refers to me\n")
    done = run(runner, "verify", local_registry, **verify_inputs(bare, runner.issuer.url))
    assert done.returncode == 1, done.log
    assert done.outputs == {"verified": "false"}
    assert "No Sigstore bundle refers to" in done.errors[0]
    assert "push_to_registry" in done.errors[0]

