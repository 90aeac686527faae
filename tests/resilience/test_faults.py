"""Dependency faults: the OIDC issuer's JWKS down or slow, the database gone, the TSA failing.

Cached issuer keys keep working while the JWKS endpoint is down or slow; when the cache
cannot help (an unknown key id) the answer is a 503 problem document with Retry-After. A
database that refuses connections gives 503s and the service recovers by itself, without a
restart. A failing TSA stores nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from signer.client import Client
from tests.adversarial.builders import (
    assert_problem,
    new_csr,
    request_cert,
    sign_digest,
    signature_request,
    stored,
)
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, database, free_port, init

pytestmark = [pytest.mark.integration, pytest.mark.resilience]


# -- the issuer's keys ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def issuers() -> Iterator[dict[str, FakeGitHubIssuer]]:
    made = {name: FakeGitHubIssuer() for name in ("warm", "cold", "slow")}
    yield made
    for fake in made.values():
        fake.stop()


@pytest.fixture(scope="module")
def jwks_service(issuers: dict[str, FakeGitHubIssuer],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service of its own that trusts three issuers nobody else has asked it about.

    PyJWT refreshes a JWKS for an unknown key id at most every 30 s, so "the cache cannot
    help" is shown with issuers whose keys the service never fetched.
    """
    data = tmp_path_factory.mktemp("jwks") / "data"
    svc = Service(data, init(data), issuers["warm"].url,
                  extra_args=[a for fake in issuers.values()
                              for a in ("--insecure-issuer", fake.url)])
    svc.start()
    yield svc
    svc.stop()


def _namespace_for(svc: Service, fake: FakeGitHubIssuer) -> Tenant:
    import uuid

    admin = svc.admin()
    namespace = f"ns-{uuid.uuid4().hex[:10]}"
    admin.request("POST", "/v1/namespaces", json={"name": namespace})
    admin.request("POST", f"/v1/namespaces/{namespace}/policies", json={
        "issuer": fake.url, "claims": {"repository_owner": "acme"}, "permissions": ["sign"]})
    return Tenant(namespace, "", "acme")


def _jwks_fetches(fake: FakeGitHubIssuer) -> int:
    return sum(path == "/.well-known/jwks" for path in list(fake.requests))


def test_jwks_down_cached_keys_work_uncached_are_503(
    jwks_service: Service, issuers: dict[str, FakeGitHubIssuer]
) -> None:
    svc, warm, cold = jwks_service, issuers["warm"], issuers["cold"]
    tenant = _namespace_for(svc, warm)
    assert request_cert(svc, warm.token(), tenant.namespace).status_code == 200
    warm.jwks_down = True
    fetches = _jwks_fetches(warm)
    # Keys the service holds keep working, without asking the issuer.
    for _ in range(3):
        assert request_cert(svc, warm.token(), tenant.namespace).status_code == 200
    assert _jwks_fetches(warm) == fetches
    # An issuer whose keys the service does not hold yet, while its JWKS is down.
    cold.jwks_down = True
    other = _namespace_for(svc, cold)
    before = stored(svc, other.namespace)
    refused = request_cert(svc, cold.token(), other.namespace)
    assert_problem(refused, 503, "JWKS", "Retry")
    assert int(refused.headers["retry-after"]) > 0
    assert stored(svc, other.namespace) == before
    # The issuer is back: the next request fetches the keys, no restart needed.
    cold.jwks_down = False
    assert request_cert(svc, cold.token(), other.namespace).status_code == 200


def test_jwks_slow_cached_keys_are_fast_uncached_are_503(
    jwks_service: Service, issuers: dict[str, FakeGitHubIssuer]
) -> None:
    svc, warm, slow = jwks_service, issuers["warm"], issuers["slow"]
    tenant = _namespace_for(svc, warm)
    assert request_cert(svc, warm.token(), tenant.namespace).status_code == 200

    def slowly(serve):  # type: ignore[no-untyped-def]
        def jwks() -> dict:
            time.sleep(9)  # past the service's 5 s issuer timeout
            return serve()
        return jwks

    warm.jwks = slowly(warm.jwks)  # type: ignore[method-assign]
    slow.jwks = slowly(slow.jwks)  # type: ignore[method-assign]
    started = time.monotonic()
    assert request_cert(svc, warm.token(), tenant.namespace).status_code == 200
    assert time.monotonic() - started < 3
    other = _namespace_for(svc, slow)
    started = time.monotonic()
    refused = request_cert(svc, slow.token(), other.namespace)
    assert_problem(refused, 503, "JWKS")
    assert time.monotonic() - started < 8.5  # the 5 s timeout, not the 9 s answer


# -- the database -------------------------------------------------------------------------------
@pytest.fixture
def pg_service(issuer: FakeGitHubIssuer, tmp_path: Path) -> Iterator[Service]:
    data = tmp_path / "data"
    with database("postgresql") as url:
        assert url is not None
        svc = Service(data, init(data, url), issuer.url, database_url=url)
        svc.start()
        try:
            yield svc
        finally:
            _allow_connections(url, True)
            svc.stop()


def _admin_url(url: str) -> tuple[str, str]:
    base, name = url.rsplit("/", 1)
    return base + "/postgres", name


def _allow_connections(url: str, allow: bool) -> None:
    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


@pytest.mark.postgres
def test_database_unavailable_is_503_and_recovers_without_restart(pg_service: Service
                                                                 ) -> None:
    svc = pg_service
    assert svc.database_url is not None and svc.process is not None
    tenant = svc.tenant()
    pid = svc.process.pid
    digest = hashlib.sha256(b"db down").hexdigest()
    body, _ = signature_request(svc, tenant.api_key, tenant.namespace,
                                f"ghcr.io/acme/db@sha256:{digest}")
    _allow_connections(svc.database_url, False)
    try:
        ready = svc.get("/readyz")
        assert_problem(ready, 503, "database", "Retry")
        assert int(ready.headers["retry-after"]) > 0
        assert_problem(svc.post("/v1/signatures", tenant.api_key, json=body), 503,
                       "nothing was stored")
        assert_problem(request_cert(svc, tenant.api_key, tenant.namespace), 503)
        assert_problem(svc.get("/v1/signatures", tenant.api_key,
                               params={"namespace": tenant.namespace}), 503)
    finally:
        _allow_connections(svc.database_url, True)
    deadline = time.monotonic() + 20
    while svc.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "no recovery within 20 s"
        time.sleep(0.2)
    created = svc.post("/v1/signatures", tenant.api_key, json=body)
    assert created.status_code == 201, created.text
    assert svc.process is not None and svc.process.pid == pid  # the same process throughout


# -- the TSA -------------------------------------------------------------------------------------
class FailingTSA:
    """Stands for a TSA whose key (a KMS, an HSM) cannot sign right now."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.failing = True

    def timestamp(self, data: bytes) -> bytes:
        if self.failing:
            raise OSError("the TSA's key is unavailable")
        return self.real.timestamp(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.fixture(scope="module")
def tsa_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, FailingTSA]]:
    """The real app and runtime, served in-process so that the TSA can be made to fail."""
    import uvicorn

    from signer.service.app import create_app
    from signer.service.config import Settings
    from signer.service.runtime import load

    data = tmp_path_factory.mktemp("tsa") / "data"
    admin_key = init(data)
    port = free_port()
    runtime = load(Settings(data_dir=data, port=port))
    failing = FailingTSA(runtime.service.tsa)
    runtime.service.tsa = failing  # type: ignore[assignment]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", admin_key, failing
    server.should_exit = True
    thread.join(timeout=10)


def _tenant(url: str, admin_key: str) -> Tenant:
    import uuid

    admin = Client(url, admin_key)
    namespace = f"ns-{uuid.uuid4().hex[:10]}"
    admin.request("POST", "/v1/namespaces", json={"name": namespace})
    key = admin.request("POST", f"/v1/namespaces/{namespace}/api-keys",
                        json={"name": "ci", "permissions": ["sign", "verify"]})
    return Tenant(namespace, key["token"], "acme")


def _upload(url: str, tenant: Tenant, failing: FailingTSA) -> tuple[dict, requests.Response]:
    key, csr = new_csr()
    failing.failing = False
    leaf = Client(url, tenant.api_key).issue_certificate(tenant.namespace, csr, {})[
        "certificate_chain"][0]
    digest = hashlib.sha256(b"tsa down").hexdigest()
    body = {"namespace": tenant.namespace, "name": f"ghcr.io/acme/tsa@sha256:{digest}",
            "certificate": leaf, "signature": sign_digest(key, digest)}
    failing.failing = True
    response = requests.post(f"{url}/v1/signatures", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {tenant.api_key}"})
    return body, response


def test_tsa_failure_stores_nothing(tsa_service: tuple[str, str, FailingTSA]) -> None:
    url, admin_key, failing = tsa_service
    tenant = _tenant(url, admin_key)
    body, response = _upload(url, tenant, failing)
    assert response.status_code >= 500
    listed = Client(url, tenant.api_key).list_signatures(tenant.namespace)
    assert listed == []
    # The TSA is back: the very same upload is stored, once.
    failing.failing = False
    retried = requests.post(f"{url}/v1/signatures", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert retried.status_code == 201, retried.text
    assert len(Client(url, tenant.api_key).list_signatures(tenant.namespace)) == 1


def test_tsa_failure_is_a_503_problem_document(tsa_service: tuple[str, str, FailingTSA]
                                               ) -> None:
    url, admin_key, failing = tsa_service
    _, response = _upload(url, _tenant(url, admin_key), failing)
    assert_problem(response, 503, "nothing was stored")
    assert int(response.headers["retry-after"]) > 0
