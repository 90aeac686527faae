"""A real browser (Debian's chromium, driven by Playwright) against the real service.

Playwright never downloads a browser here: scripts/prereqs/50-browser.sh installs Debian's
``chromium`` and exports SIGNER_TEST_CHROMIUM; Playwright starts it by executable_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant

CHROMIUM = os.environ.get("SIGNER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# The viewer's zone for the local-time script; the server renders UTC.
VIEWER_TIMEZONE = "Asia/Tokyo"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: run scripts/prereqs/50-browser.sh "
                    "(or scripts/test), which installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=LAPTOP, locale="en-US", timezone_id=VIEWER_TIMEZONE,
                              accept_downloads=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- signatures made through the real flow ------------------------------------------------------
APP = "ghcr.io/acme/app"
TOOLS = "ghcr.io/acme/tools"
APP_DIGEST = digest("app image manifest")
TOOLS_DIGEST = digest("tools image manifest")


@dataclass
class Signed:
    """A namespace with signatures made by the CLI, and a read-only key for the page."""

    tenant: Tenant
    reviewer_key: str
    reviewer_key_id: str
    app_token_signature: str  # OIDC token, refs/tags/v1.2.3
    app_key_signature: str  # API key (declared), refs/heads/main
    tools_signature: str  # API key (declared), refs/heads/main
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.tenant.namespace


def cli_sign(service: Service, env: dict[str, str], workdir: Path, name: str,
             *flags: str) -> str:
    done = service.cli("artifact", "sign", "--name", name, "--output", "json", *flags,
                       cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


def reviewer_key(service: Service, namespace: str, name: str = "reviewer",
                 permissions: tuple[str, ...] = ("verify",)) -> dict[str, str]:
    created = service.admin().request("POST", f"/v1/namespaces/{namespace}/api-keys", json={
        "name": name, "permissions": list(permissions)})
    return {"id": created["id"], "token": created["token"]}


def make_signed(service: Service, issuer: FakeGitHubIssuer, workdir: Path) -> Signed:
    tenant = service.tenant()
    key_env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    token_env = {**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace}
    app_token = cli_sign(service, token_env, workdir, f"{APP}@sha256:{APP_DIGEST}",
                         "--enable-github-action-token")
    app_key = cli_sign(service, key_env, workdir, f"{APP}@sha256:{APP_DIGEST}",
                       "--source-repository", "acme/app",
                       "--source-repository-ref", "refs/heads/main",
                       "--build-config-name", "nightly")
    tools = cli_sign(service, key_env, workdir, f"{TOOLS}@sha256:{TOOLS_DIGEST}",
                     "--source-repository", "acme/tools",
                     "--source-repository-ref", "refs/heads/main")
    reviewer = reviewer_key(service, tenant.namespace)
    return Signed(tenant, reviewer["token"], reviewer["id"], app_token, app_key, tools)


@pytest.fixture(scope="module")
def signed(service: Service, issuer: FakeGitHubIssuer,
           tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return make_signed(service, issuer, tmp_path_factory.mktemp("signed"))


# -- the page over plain HTTP (requests), for what a browser would not send ---------------------
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def http_sign_in(service: Service, api_key: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{service.url}/ui/sign-in", timeout=30)
    done = session.post(f"{service.url}/ui/sign-in", timeout=30, allow_redirects=False,
                        data={"api_key": api_key, "csrf_token": csrf_token(form.text)})
    assert done.status_code == 303, done.text
    return session
