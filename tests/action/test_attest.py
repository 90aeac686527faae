"""The attest action: SLSA provenance from the job's token, or a predicate file, through the
entry point the container runs; outputs and a job summary that shows the statement."""

from __future__ import annotations

import base64
import json

import pytest

from tests.action.conftest import FakeRunner

pytestmark = pytest.mark.integration


def test_attest_a_file_with_provenance_from_the_token(runner: FakeRunner) -> None:
    (runner.workspace / "dist").mkdir()
    (runner.workspace / "dist" / "app.tar.gz").write_bytes(b"release\n")
    done = runner.run("attest", artifact_path="dist/app.tar.gz", bundle_path="out/att.json")
    assert done.returncode == 0, done.log
    outputs = done.outputs
    assert outputs["bundle_path"] == "out/att.json" and len(outputs["attestation_id"]) == 32
    bundle = json.loads((runner.workspace / "out" / "att.json").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["name"] == "app.tar.gz"
    assert "In-toto statement" in done.summary and "buildDefinition" in done.summary


def test_attest_an_sbom_and_refusals(runner: FakeRunner) -> None:
    (runner.workspace / "sbom.json").write_text(json.dumps({"bomFormat": "CycloneDX"}))
    name = "ghcr.io/acme/app@sha256:" + "c" * 64
    done = runner.run("attest", artifact_name=name, predicate_type="https://cyclonedx.org/bom",
                      predicate_path="sbom.json")
    assert done.returncode == 0, done.log
    assert "https://cyclonedx.org/bom" in done.summary and "CycloneDX" in done.summary
    both = runner.run("attest", artifact_name=name, artifact_path="sbom.json")
    assert both.returncode != 0 and "exactly one of artifact_name and artifact_path" in both.log
    no_file = runner.run("attest", artifact_name=name, predicate_type="https://spdx.dev/Document")
    assert no_file.returncode != 0 and "needs predicate_path" in no_file.log
