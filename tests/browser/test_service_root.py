"""The service's bare URL, typed into a browser, leads to the page rather than a JSON 404."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import Signed, http_sign_in
from tests.service_process import Service

pytestmark = pytest.mark.browser


def test_the_root_redirects_to_the_artifacts_page(service: Service) -> None:
    root = requests.get(f"{service.url}/", timeout=30, allow_redirects=False)
    assert root.status_code in (302, 303, 307), root.text
    assert root.headers["Location"] == "/ui/artifacts"
    schema = requests.get(f"{service.url}/openapi.json", timeout=30).json()
    assert "/" not in schema["paths"]


def test_a_browser_at_the_root_lands_on_sign_in_then_the_artifacts(
        page: Page, service: Service, signed: Signed) -> None:
    page.goto(f"{service.url}/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=%2Fui%2Fartifacts$"))
    page.get_by_label("API key").fill(signed.reviewer_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Artifacts")).to_be_visible()
    page.goto(f"{service.url}/")  # signed in: straight to the list
    expect(page).to_have_url(re.compile(r"/ui/artifacts$"))
    expect(page.get_by_role("heading", level=1, name="Artifacts")).to_be_visible()


def test_a_signed_in_session_follows_the_root_to_the_list(service: Service,
                                                          signed: Signed) -> None:
    session = http_sign_in(service, signed.reviewer_key)
    page = session.get(f"{service.url}/", timeout=30)
    assert page.status_code == 200 and page.url == f"{service.url}/ui/artifacts"
    assert "text/html" in page.headers["Content-Type"] and signed.namespace in page.text
