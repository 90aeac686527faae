"""Attestations on CI/CD > Artifacts, in a real browser: beside the signatures, SLSA provenance
as readable fields, any other predicate as formatted JSON, both leaf identities, the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import digest, reviewer_key, screenshot
from tests.browser.test_artifacts_page import section, sign_in, value_of
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service

pytestmark = pytest.mark.browser

IMAGE = "ghcr.io/acme/attested"
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"


def test_attestations_beside_signatures(page: Page, service: Service, issuer: FakeGitHubIssuer,
                                        tmp_path: Path) -> None:
    tenant = service.tenant()
    name = f"{IMAGE}@sha256:{digest('attested image')}"
    env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    (tmp_path / "sbom.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3",
                                                    "name": "attested-sbom"}))
    for args in ((), ("--predicate-type", SPDX, "--predicate", "sbom.json")):
        done = service.cli("artifact", "attest", "--name", name, "--enable-github-action-token",
                           *args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    done = service.cli("artifact", "sign", "--name", name, "--enable-github-action-token",
                       cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    sign_in(page, service, reviewer_key(service, tenant.namespace)["token"])

    page.get_by_role("link", name=IMAGE, exact=True).click()
    expect(section(page, "Signatures").locator("tbody tr")).to_have_count(1)
    attestations = section(page, "Attestations").locator("tbody tr")
    expect(attestations).to_have_count(2)
    expect(attestations.filter(has_text=SLSA)).to_have_count(1)
    expect(attestations.filter(has_text=SPDX)).to_have_count(1)
    screenshot(page, "artifact-with-attestations")

    attestations.filter(has_text=SLSA).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Attestation details")
    summary = section(page, "Attestation")
    expect(value_of(summary, "Predicate type")).to_have_text(SLSA)
    sans = value_of(summary, "Subject alternative names")
    expect(sans).to_contain_text(f"{issuer.url}/acme/app/.github/workflows/release.yml")
    expect(sans).to_contain_text("repo:acme/app:ref:refs/tags/v1.2.3")
    provenance = section(page, "Build provenance (SLSA v1)")
    expect(value_of(provenance, "Build type")).to_have_text(
        "https://actions.github.io/buildtypes/workflow/v1")
    expect(provenance).to_contain_text("release.yml")
    screenshot(page, "attestation-slsa")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download bundle").click()
    saved = tmp_path / "downloaded.json"
    download.value.save_as(saved)
    bundle = json.loads(saved.read_text())
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"

    page.go_back()
    attestations.filter(has_text=SPDX).get_by_role("link").click()
    expect(page.get_by_role("heading", name="Build provenance (SLSA v1)")).to_have_count(0)
    statement = section(page, "In-toto statement").locator("pre")
    expect(statement).to_contain_text('"spdxVersion": "SPDX-2.3"')  # formatted, not one line
    expect(statement).to_contain_text(SPDX)
