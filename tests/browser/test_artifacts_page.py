"""CI/CD > Artifacts in a real browser: sign in, list, search, details, revocation, sign out."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from playwright.sync_api import Browser, Locator, Page, expect

from signer import bundle
from signer.artifact import ArtifactRef
from signer.client import Client
from signer.operations import sign
from signer.provenance import FIELDS
from tests.browser.conftest import (
    APP,
    APP_DIGEST,
    PHONE,
    TOOLS,
    VIEWER_TIMEZONE,
    Signed,
    digest,
    make_signed,
    reviewer_key,
    screenshot,
)
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service

pytestmark = pytest.mark.browser

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def sign_in(page: Page, service: Service, api_key: str, capture: str | None = None) -> None:
    page.goto(f"{service.url}/ui/artifacts")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=%2Fui%2Fartifacts$"))
    if capture:
        screenshot(page, capture)
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/artifacts$"))
    expect(page.get_by_role("heading", level=1, name="Artifacts")).to_be_visible()


def artifact_rows(page: Page) -> Locator:
    return page.locator("table.list tbody tr")


def value_of(section: Locator, label: str) -> Locator:
    """The <dd> of the <dt> with exactly this label, in a definition list of the section."""
    term = section.page.locator("dt", has_text=re.compile(f"^{re.escape(label)}$"))
    return section.locator("dl.pairs > div", has=term).locator("dd")


def section(page: Page, heading: str) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name=heading, exact=True))


def apply_filters(page: Page) -> None:
    page.get_by_role("button", name="Apply").click()


def test_review_journey(page: Page, service: Service, issuer: FakeGitHubIssuer,
                        tmp_path: Path) -> None:
    signed = make_signed(service, issuer, tmp_path)
    sign_in(page, service, signed.reviewer_key, capture="sign-in")
    expect(page.get_by_text(signed.namespace, exact=True)).to_be_visible()

    # -- the list: name, short digest (full on hover), dates, count, status ----------------
    rows = artifact_rows(page)
    expect(rows).to_have_count(2)
    app = rows.filter(has_text=APP)
    expect(app.locator("td[data-label=Signatures]")).to_have_text("2")
    expect(app.locator(".status")).to_have_text("not revoked")
    short = app.locator("code.digest")
    expect(short).to_have_text(f"sha256:{APP_DIGEST[:12]}…")
    expect(short).to_have_attribute("title", f"sha256:{APP_DIGEST}")
    for column in ("Created", "Last updated"):
        when = app.locator(f"td[data-label='{column}'] time")
        iso = when.get_attribute("datetime") or ""
        assert ISO_UTC.match(iso), iso
        expect(when).to_have_attribute("title", iso)
        # The optional script shows the viewer's local time; the UTC text is the fallback.
        expect(when).not_to_contain_text("UTC")
    created = datetime.fromisoformat(app.locator("time").first.get_attribute("datetime") or "")
    local = created.astimezone(ZoneInfo(VIEWER_TIMEZONE))
    expect(app.locator("time").first).to_contain_text(local.strftime("%-I:%M"))
    screenshot(page, "artifacts-list")

    # -- search by name prefix, filter by source repository -------------------------------
    page.get_by_label("Search by name").fill("ghcr.io/acme/to")
    apply_filters(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(TOOLS)
    for pasted in (f"sha256:{APP_DIGEST[:10]}", f"{APP}@sha256:{APP_DIGEST}"):
        page.get_by_label("Search by name").fill(pasted)  # a digest, or a whole reference
        apply_filters(page)
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(APP)
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Source repository").select_option(label="acme/tools")
    apply_filters(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(TOOLS)
    page.goto(f"{service.url}/ui/artifacts?repo=acme/tools")  # the short form, by hand
    expect(rows).to_have_count(1)
    expect(page.get_by_label("Source repository")).to_have_value("acme/tools")
    apply_filters(page)  # and it survives the form
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="Clear").click()

    # -- artifact digest details: metadata, build and source configuration, signatures -----
    page.get_by_role("link", name=APP, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(APP)
    metadata = section(page, "Metadata")
    expect(value_of(metadata, "Registry")).to_have_text("ghcr.io")
    expect(value_of(metadata, "Repository")).to_have_text("acme/app")
    expect(value_of(metadata, "Digest")).to_have_text(f"sha256:{APP_DIGEST}")
    build = section(page, "Build configuration")
    expect(value_of(build, "Build config name")).to_have_text("nightly")  # the newest's
    source = section(page, "Source configuration")
    expect(value_of(source, "Source repository ref")).to_have_text("refs/heads/main")
    signatures = section(page, "Signatures")
    expect(signatures.locator("tbody tr")).to_have_count(2)
    screenshot(page, "artifact-details")

    # -- signature details: identity, issuer, every provenance field and its source --------
    signatures.locator("tbody tr", has_text="token").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1, name="Signature details")).to_be_visible()
    summary = section(page, "Signature")
    expect(value_of(summary, "Identity")).to_have_text("repo:acme/app:ref:refs/tags/v1.2.3")
    expect(value_of(summary, "OIDC issuer")).to_have_text(issuer.url)
    provenance = section(page, "Provenance")
    for field in FIELDS:  # every field of the one table, labelled as the table labels it
        expect(value_of(provenance, field.label)).to_have_count(1)
    ref_value = value_of(provenance, "Source repository ref")
    expect(ref_value).to_contain_text("refs/tags/v1.2.3")
    expect(ref_value.locator(".source")).to_have_text("token")
    expect(value_of(provenance, "Namespace").locator(".source")).to_have_text("service")
    expect(provenance.locator("a", has_text="/actions/runs/")).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+/acme/app/actions/runs/\d+/attempts/1$"))
    # Certificate: validity window of 5 minutes, serial, PEM to copy (button needs JS).
    certificate = section(page, "Certificate")
    expect(value_of(certificate, "Valid until")).to_contain_text("(5 minutes)")
    pem = page.get_by_label("Certificate (PEM)").input_value()
    cert = x509.load_pem_x509_certificate(pem.encode())
    serial = format(cert.serial_number, "x")
    expect(value_of(certificate, "Serial")).to_have_text(
        ":".join(re.findall("..", serial.zfill(len(serial) + len(serial) % 2))))
    expect(page.get_by_role("button", name="Copy PEM")).to_be_visible()
    timestamp = section(page, "Timestamp")
    expect(value_of(timestamp, "Timestamp authority")).to_contain_text(
        "CN=signer timestamp authority")
    expect(value_of(timestamp, "Time").locator("time")).to_have_attribute(
        "datetime", ISO_UTC)
    screenshot(page, "signature-details")

    # -- the bundle download is the stored Sigstore bundle, and it verifies offline ---------
    with page.expect_download() as info:
        page.get_by_role("link", name="Download bundle").click()
    download = info.value
    assert download.suggested_filename == ArtifactRef(APP, APP_DIGEST).safe_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert bundle.read(saved).certificate == cert
    assert service.cli("trust-root", "export", "--out", str(tmp_path / "root.json")
                       ).returncode == 0
    offline = service.cli("artifact", "verify", "--name", f"{APP}@sha256:{APP_DIGEST}",
                          "--bundle", str(saved), "--trust-root", str(tmp_path / "root.json"),
                          "--certificate-oidc-issuer", issuer.url)
    assert offline.returncode == 0, offline.stderr

    # -- a revocation with the real CLI; the page follows -----------------------------------
    revoked = service.cli("artifact", "revoke-signature", "--name", APP,
                          "--source-repository-ref", "refs/tags/v1.2.3",
                          "--reason", "built from a compromised runner",
                          env={"SIGNER_API_KEY": signed.tenant.api_key,
                               "SIGNER_NAMESPACE": signed.namespace})
    assert revoked.returncode == 0, revoked.stderr
    page.reload()
    expect(page.locator(".heading .status")).to_have_text("revoked")
    revocation = section(page, "Revoked")
    expect(value_of(revocation, "Reason")).to_have_text("built from a compromised runner")
    expect(value_of(revocation, "Revoked by")).to_have_text(f"apikey:{signed.namespace}/ci")
    expect(value_of(revocation, "Revoked at").locator("time")).to_have_count(1)
    screenshot(page, "signature-revoked")

    page.get_by_role("link", name="Artifacts").first.click()
    expect(app.locator(".status")).to_have_text("mixed")
    page.get_by_label("Status").select_option("mixed")
    apply_filters(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(APP)
    page.get_by_label("Status").select_option("revoked")
    apply_filters(page)
    expect(rows).to_have_count(0)
    expect(page.get_by_text("No artifacts match these filters.")).to_be_visible()

    # -- sign out: the session ends on the server, not only in this browser -----------------
    cookie = next(c for c in page.context.cookies() if c["name"] == "signer_session")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
    page.goto(f"{service.url}/ui/artifacts")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    page.context.add_cookies([cookie])  # replaying the old cookie does not sign back in
    page.goto(f"{service.url}/ui/artifacts")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))


def test_readable_without_javascript_at_phone_width(browser: Browser, service: Service,
                                                    signed: Signed) -> None:
    context = browser.new_context(viewport=PHONE, java_script_enabled=False,
                                  timezone_id=VIEWER_TIMEZONE, is_mobile=True)
    try:
        page = context.new_page()
        sign_in(page, service, signed.reviewer_key)
        rows = artifact_rows(page)
        expect(rows).to_have_count(2)
        when = rows.first.locator("td[data-label=Created] time")
        expect(when).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
        # Every control is named; nothing is wider than the phone.
        for label in ("Search by name", "Status", "Source repository", "Sort by", "Order"):
            expect(page.get_by_label(label)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "artifacts-list-phone")
        page.get_by_role("link", name=APP, exact=True).click()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "artifact-details-phone")
        page.goto(f"{service.url}/ui/signatures/{signed.app_token_signature}")
        expect(page.get_by_role("heading", level=1, name="Signature details")).to_be_visible()
        expect(page.get_by_role("button", name="Copy PEM")).to_be_hidden()  # needs JS
        expect(page.get_by_label("Certificate (PEM)")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "signature-details-phone")
    finally:
        context.close()


def test_keyset_pagination_and_sorting(page: Page, service: Service, tmp_path: Path) -> None:
    tenant = service.tenant()
    client = Client(service.url, tenant.api_key)
    names = [f"ghcr.io/acme/svc-{i:02d}" for i in range(53)]
    for name in names:  # the real flow, in-process: certificate, signature, timestamp
        sign(client, tenant.namespace, ArtifactRef(name, digest(name)),
             {"source_repository": "acme/svc"}, tmp_path / "b.json")
    reviewer = reviewer_key(service, tenant.namespace)
    sign_in(page, service, reviewer["token"])
    rows = artifact_rows(page)
    expect(rows).to_have_count(50)
    first_page = rows.locator("a.name").all_inner_texts()
    assert first_page == names[::-1][:50]  # last updated, newest first
    expect(page.get_by_role("link", name="Previous page")).to_have_count(0)
    nxt = page.get_by_role("link", name="Next page")
    assert re.search(r"[?&]after=[A-Za-z0-9_-]+$", nxt.get_attribute("href") or "")
    nxt.click()
    expect(rows).to_have_count(3)
    assert rows.locator("a.name").all_inner_texts() == names[::-1][50:]
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous page").click()
    expect(rows).to_have_count(50)
    assert rows.locator("a.name").all_inner_texts() == first_page

    page.get_by_label("Sort by").select_option("created")
    page.get_by_label("Order").select_option("asc")
    apply_filters(page)
    assert rows.locator("a.name").all_inner_texts() == names[:50]
    page.get_by_role("link", name="Next page").click()
    assert rows.locator("a.name").all_inner_texts() == names[50:]
    expect(page.get_by_label("Sort by")).to_have_value("created")  # filters survive paging
