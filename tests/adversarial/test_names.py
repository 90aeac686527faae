"""Hostile artifact names on every path that takes one: upload, lookup, revocation, CLI.

tests/integration/test_refusals.py covers a tag, 63 hex, uppercase hex, sha512, a bell
character and ../../etc/passwd on upload; these are the rest of the corpus.
"""

from __future__ import annotations

import hashlib

import pytest

from signer.artifact import MAX_NAME_LENGTH
from tests.adversarial.builders import assert_problem, signature_request, stored
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

DIGEST = hashlib.sha256(b"names").hexdigest()
GOOD = f"ghcr.io/acme/app@sha256:{DIGEST}"

# (label, name, status, phrase)
NAMES = [
    ("10 KB name", "a" * 10_240 + f"@sha256:{DIGEST}", 422, "at most 600"),
    ("one past the name limit", "a" * (MAX_NAME_LENGTH + 1) + f"@sha256:{DIGEST}", 400,
     f"the limit is {MAX_NAME_LENGTH}"),
    ("65 hex", f"ghcr.io/acme/app@sha256:{DIGEST}0", 400, "64 lowercase"),
    ("empty digest", "ghcr.io/acme/app@sha256:", 400, "64 lowercase"),
    ("no algorithm", f"ghcr.io/acme/app@{DIGEST}", 400, "not a sha256"),
    ("md5", "ghcr.io/acme/app@md5:" + "a" * 32, 400, "not a sha256"),
    ("SHA256 uppercase algorithm", f"ghcr.io/acme/app@SHA256:{DIGEST}", 400, "not a sha256"),
    ("fullwidth digits", "ghcr.io/acme/app@sha256:" + "\uff11" * 64, 400, "64 lowercase"),
    ("trailing newline", f"{GOOD}\n", 400, "64 lowercase"),
    ("space", f"ghcr.io/acme/my app@sha256:{DIGEST}", 400, "not allowed"),
    ("newline", f"ghcr.io/acme/app\nINFO forged log line@sha256:{DIGEST}", 400, "not allowed"),
    ("ANSI escape", f"ghcr.io/acme/\x1b[31mapp@sha256:{DIGEST}", 400, "not allowed"),
    ("right-to-left override", f"ghcr.io/acme/\u202eppa@sha256:{DIGEST}", 400, "not allowed"),
    ("NUL", f"ghcr.io/acme/\x00app@sha256:{DIGEST}", 400, "not allowed"),
    ("Cyrillic homoglyph", f"ghcr.io/\u0430cme/app@sha256:{DIGEST}", 400, "not allowed"),
    ("absolute path", f"/etc/passwd@sha256:{DIGEST}", 400, "not allowed"),
    ("dot segment", f"ghcr.io/acme/./app@sha256:{DIGEST}", 400, "not allowed"),
    ("traversal in the middle", f"ghcr.io/acme/../../root@sha256:{DIGEST}", 400,
     "not allowed"),
    ("percent-encoded traversal", f"ghcr.io/acme/%2e%2e/app@sha256:{DIGEST}", 400,
     "not allowed"),
    ("backslashes", f"ghcr.io\\acme\\app@sha256:{DIGEST}", 400, "not allowed"),
    ("two digests", f"ghcr.io/acme/app@sha256:{DIGEST}@sha256:{DIGEST}", 400, "not allowed"),
]
IDS = [n[0] for n in NAMES]


@pytest.fixture(scope="module")
def upload(service: Service) -> tuple[Tenant, dict[str, str]]:
    """A tenant and a valid upload for GOOD (its certificate lives 5 minutes: enough)."""
    tenant = service.tenant()
    body, _ = signature_request(service, tenant.api_key, tenant.namespace, GOOD)
    return tenant, body


@pytest.mark.parametrize(("label", "name", "status", "phrase"), NAMES, ids=IDS)
def test_hostile_names_on_upload(service: Service, upload: tuple[Tenant, dict[str, str]],
                                 label: str, name: str, status: int, phrase: str) -> None:
    tenant, body = upload
    before = stored(service, tenant.namespace)
    response = service.post("/v1/signatures", tenant.api_key, json=dict(body, name=name))
    assert_problem(response, status, *([phrase] if phrase else []))
    assert stored(service, tenant.namespace) == before


@pytest.mark.parametrize(("label", "name", "status", "phrase"), NAMES, ids=IDS)
def test_hostile_names_on_lookup(service: Service, tenant: Tenant, label: str, name: str,
                                 status: int, phrase: str) -> None:
    response = service.get("/v1/entries", tenant.api_key,
                           params={"namespace": tenant.namespace, "name": name})
    assert_problem(response, status, *([phrase] if phrase else []))


@pytest.mark.parametrize("name", ["ghcr.io/acme/app\nINFO forged", "../../etc/passwd",
                                  "ghcr.io/acme/\x00app"], ids=["newline", "traversal", "NUL"])
def test_hostile_names_on_revocation(service: Service, tenant: Tenant, name: str) -> None:
    before = stored(service, tenant.namespace)
    response = service.post("/v1/revocations", tenant.api_key, json={
        "namespace": tenant.namespace, "name": name,
        "source_repository_ref": "refs/heads/main", "reason": "x"})
    assert_problem(response, 400, "not allowed")
    assert stored(service, tenant.namespace) == before


def test_the_cli_never_echoes_control_characters(service: Service, tenant: Tenant,
                                                 tmp_path) -> None:
    env = {"SIGNER_NAMESPACE": tenant.namespace, "SIGNER_API_KEY": tenant.api_key}
    hostile = f"ghcr.io/acme/\x1b]0;pwned\x07\x1b[2Japp@sha256:{DIGEST}"
    for command in ("sign", "verify"):
        done = service.cli("artifact", command, "--name", hostile, "--certificate-oidc-issuer",
                           "https://x", cwd=tmp_path, env=env) if command == "verify" else \
            service.cli("artifact", command, "--name", hostile, cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        assert "not allowed" in done.stderr
        assert "\x1b" not in done.stderr + done.stdout and "\x07" not in done.stderr
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())
