"""The page's sessions, CSRF protection and namespace isolation, over plain HTTP.

These are the requests a browser would not make (a forged form, a replayed cookie, another
namespace's URL), so they are sent with requests against the same real service.
"""

from __future__ import annotations

import re

import pytest
import requests

from tests.browser.conftest import Signed, csrf_token, http_sign_in, reviewer_key
from tests.service_process import Service

pytestmark = pytest.mark.browser


def session_cookie(response: requests.Response) -> str | None:
    for header in response.raw.headers.getlist("set-cookie"):
        if header.startswith("signer_session="):
            return header
    return None


def test_cross_namespace_urls_are_404(service: Service, signed: Signed) -> None:
    owner = http_sign_in(service, signed.reviewer_key)
    page = owner.get(f"{service.url}/ui/signatures/{signed.app_token_signature}", timeout=30)
    assert page.status_code == 200
    artifact_id = re.search(r"/ui/artifacts/([0-9a-f]{32})", page.text).group(1)  # type: ignore[union-attr]

    other = service.tenant()
    stranger = http_sign_in(service, reviewer_key(service, other.namespace)["token"])
    urls = [f"/ui/artifacts/{artifact_id}", f"/ui/signatures/{signed.app_token_signature}",
            f"/ui/signatures/{signed.app_token_signature}/bundle"]
    for url in urls:
        assert owner.get(service.url + url, timeout=30).status_code == 200, url
        refused = stranger.get(service.url + url, timeout=30)
        assert refused.status_code == 404, url
        assert signed.namespace not in refused.text and "acme/app" not in refused.text
    # The same answer as for an id that exists nowhere: nothing tells the two apart.
    nowhere = stranger.get(f"{service.url}/ui/artifacts/{'0' * 32}", timeout=30)
    elsewhere = stranger.get(f"{service.url}/ui/artifacts/{artifact_id}", timeout=30)
    assert nowhere.status_code == elsewhere.status_code == 404
    assert nowhere.text == elsewhere.text
    listed = stranger.get(f"{service.url}/ui/artifacts?q=ghcr.io", timeout=30)
    assert listed.status_code == 200 and "No artifacts match" in listed.text
    assert artifact_id not in listed.text


def test_forms_without_the_csrf_token_are_refused(service: Service, signed: Signed) -> None:
    url = f"{service.url}/ui/sign-in"
    browser = requests.Session()
    token = csrf_token(browser.get(url, timeout=30).text)
    cases = {
        "no token": (browser, {"api_key": signed.reviewer_key}, {}),
        "wrong token": (browser, {"api_key": signed.reviewer_key, "csrf_token": "x" * 43}, {}),
        # A forged cross-site form: the token may be guessed from a page, the cookie is not sent.
        "no cookie": (requests.Session(), {"api_key": signed.reviewer_key,
                                           "csrf_token": token}, {}),
        "foreign origin": (browser, {"api_key": signed.reviewer_key, "csrf_token": token},
                           {"Origin": "https://evil.example"}),
    }
    for label, (client, form, headers) in cases.items():
        refused = client.post(url, data=form, headers=headers, allow_redirects=False,
                              timeout=30)
        assert refused.status_code == 403, label
        assert session_cookie(refused) is None, label
        assert "security token" in refused.text

    signed_in = http_sign_in(service, signed.reviewer_key)
    out = f"{service.url}/ui/sign-out"
    assert signed_in.post(out, allow_redirects=False, timeout=30).status_code == 403
    assert signed_in.get(f"{service.url}/ui/artifacts", allow_redirects=False,
                         timeout=30).status_code == 200  # still signed in
    page = signed_in.get(f"{service.url}/ui/artifacts", timeout=30).text
    done = signed_in.post(out, data={"csrf_token": csrf_token(page)}, allow_redirects=False,
                          timeout=30)
    assert done.status_code == 303
    assert signed_in.get(f"{service.url}/ui/artifacts", allow_redirects=False,
                         timeout=30).status_code == 303


def test_session_cookie_flags(service: Service, signed: Signed) -> None:
    for proto, secure in (("http", False), ("https", True)):
        # uvicorn takes X-Forwarded-Proto from a proxy on loopback, as behind a TLS proxy.
        # The cookie is sent by hand: a client keeps a Secure cookie for https only.
        headers = {"X-Forwarded-Proto": proto}
        form = requests.get(f"{service.url}/ui/sign-in", headers=headers, timeout=30)
        pre_session = form.cookies["signer_sign_in"]
        done = requests.post(f"{service.url}/ui/sign-in", timeout=30, allow_redirects=False,
                             headers={**headers, "Cookie": f"signer_sign_in={pre_session}"},
                             data={"api_key": signed.reviewer_key,
                                   "csrf_token": csrf_token(form.text)})
        assert done.status_code == 303, done.text
        cookie = session_cookie(done)
        assert cookie is not None
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "max-age", "expires", "path"} <= attributes
        assert "samesite=lax" in cookie.lower() and "path=/ui" in cookie.lower()
        assert ("secure" in attributes) is secure, proto
        assert signed.reviewer_key not in cookie
        assert done.headers["Location"] == "/ui/artifacts"


def test_revoked_api_key_ends_the_session(service: Service, signed: Signed) -> None:
    key = reviewer_key(service, signed.namespace, name="short-lived")
    client = http_sign_in(service, key["token"])
    assert client.get(f"{service.url}/ui/artifacts", allow_redirects=False,
                      timeout=30).status_code == 200
    service.admin().request("DELETE", f"/v1/namespaces/{signed.namespace}/api-keys/{key['id']}")
    after = client.get(f"{service.url}/ui/artifacts", allow_redirects=False, timeout=30)
    assert after.status_code == 303 and after.headers["Location"].startswith("/ui/sign-in")


def test_sign_in_needs_a_read_key_of_a_namespace(service: Service, signed: Signed) -> None:
    sign_only = reviewer_key(service, signed.namespace, name="ci-only", permissions=("sign",))
    admin = reviewer_key(service, signed.namespace, name="ns-admin", permissions=("admin",))
    cases = [(sign_only["token"], 403, "verify"), ("sgk_0000_unknown", 401, "unknown"),
             (service.admin_key, 403, "belongs to no namespace"),
             ("eyJhbGciOiJSUzI1NiJ9.e30.sig", 401, "not an API key")]
    for key, status, words in cases:
        client = requests.Session()
        form = client.get(f"{service.url}/ui/sign-in", timeout=30)
        done = client.post(f"{service.url}/ui/sign-in", allow_redirects=False, timeout=30,
                           data={"api_key": key, "csrf_token": csrf_token(form.text)})
        assert done.status_code == status, key[:12]
        assert words in done.text and session_cookie(done) is None
    http_sign_in(service, admin["token"])  # admin implies read


def test_sign_in_returns_to_the_page_asked_for_and_nowhere_else(service: Service,
                                                                signed: Signed) -> None:
    wanted = f"/ui/signatures/{signed.tools_signature}"
    first = requests.get(service.url + wanted, allow_redirects=False, timeout=30)
    assert first.status_code == 303
    for target, lands in ((wanted, wanted), ("https://evil.example/", "/ui/artifacts"),
                          ("//evil.example/ui/", "/ui/artifacts")):
        client = requests.Session()
        form = client.get(f"{service.url}/ui/sign-in", params={"next": target}, timeout=30)
        done = client.post(f"{service.url}/ui/sign-in", allow_redirects=False, timeout=30,
                           data={"api_key": signed.reviewer_key, "next": target,
                                 "csrf_token": csrf_token(form.text)})
        assert done.headers["Location"] == lands, target


def test_pages_carry_security_headers(service: Service, signed: Signed) -> None:
    client = http_sign_in(service, signed.reviewer_key)
    page = client.get(f"{service.url}/ui/artifacts", timeout=30)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    bundle = client.get(f"{service.url}/ui/signatures/{signed.tools_signature}/bundle",
                        timeout=30)
    assert bundle.headers["Content-Disposition"].startswith('attachment; filename="ghcr.io_')
    assert bundle.json()["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
