"""Limits: body size (declared or streamed), token size, request rate per principal.

Over a limit is a 413 or 429 problem document that says the limit; never a crash, and a
streamed body is never buffered past the limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from signer.service.app import MAX_BODY_BYTES
from signer.service.auth import Principal
from signer.service.limits import RateLimiter, principal_key
from signer.service.store import ApiKey
from tests.adversarial.builders import assert_problem, request_cert
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, init

pytestmark = pytest.mark.integration


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"namespace": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_streamed_body_over_the_limit_is_refused(service: Service, tenant: Tenant) -> None:
    # A generator makes requests send Transfer-Encoding: chunked, with no Content-Length.
    response = requests.post(f"{service.url}/v1/signatures", data=_chunks(2 * MAX_BODY_BYTES),
                             headers={"Authorization": f"Bearer {tenant.api_key}",
                                      "Content-Type": "application/json"}, timeout=30)
    assert_problem(response, 413, f"limit is {MAX_BODY_BYTES}")


def test_a_streamed_body_under_the_limit_is_read(service: Service, tenant: Tenant) -> None:
    response = requests.post(f"{service.url}/v1/signatures", data=_chunks(1024),
                             headers={"Authorization": f"Bearer {tenant.api_key}",
                                      "Content-Type": "application/json"}, timeout=30)
    assert_problem(response, 422, "namespace")  # read and validated: too long a namespace


# -- rate ---------------------------------------------------------------------------------------
RATE, BURST = 0.5, 6


@pytest.fixture(scope="module")
def limited(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    """A service of its own with a low limit (SQLite: the limiter does not touch the store)."""
    data = tmp_path_factory.mktemp("rate") / "data"
    svc = Service(data, init(data), issuer.url,
                  env={"SIGNER_RATE_LIMIT": str(RATE), "SIGNER_RATE_BURST": str(BURST)})
    svc.start()
    yield svc
    svc.stop()


def test_a_principal_over_its_rate_gets_429_with_retry_after(limited: Service,
                                                             issuer: FakeGitHubIssuer) -> None:
    tenant, other = limited.tenant(), limited.tenant()
    params = {"namespace": tenant.namespace}
    answers = [limited.get("/v1/signatures", tenant.api_key, params=params).status_code
               for _ in range(BURST)]
    assert answers == [200] * BURST
    refused = limited.get("/v1/signatures", tenant.api_key, params=params)
    body = assert_problem(refused, 429, "requests", "Retry-After")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 1 / RATE + 1
    assert tenant.namespace not in body["detail"] or "apikey:" in body["detail"]
    # Other principals are not affected: another key, an OIDC token, the unauthenticated.
    assert limited.get("/v1/signatures", other.api_key,
                       params={"namespace": other.namespace}).status_code == 200
    assert request_cert(limited, issuer.token(), tenant.namespace).status_code == 200
    assert limited.get("/healthz").status_code == 200
    # After Retry-After the bucket has refilled.
    time.sleep(retry_after)
    assert limited.get("/v1/signatures", tenant.api_key, params=params).status_code == 200


# -- the limiter on its own (a fake clock) ------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key_principal(key_id: str) -> Principal:
    from datetime import UTC, datetime

    key = ApiKey(key_id, "ns", "ci", frozenset({"sign"}), datetime.now(UTC), None)
    return Principal("apikey", f"apikey:ns/{key_id}", "https://signer/auth", api_key=key)


def test_token_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.take("a") == 0
    assert limiter.take("b") == 0  # buckets are per key
    clock.now += 100
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]  # never more than the burst
    assert limiter.take("a") > 0


def test_principals_are_keyed_by_what_authentication_established() -> None:
    assert principal_key(_key_principal("k1")) != principal_key(_key_principal("k2"))
    a = Principal("oidc", "repo:acme/app:ref:x", "https://issuer-a")
    b = Principal("oidc", "repo:acme/app:ref:x", "https://issuer-b")
    assert principal_key(a) != principal_key(b)


def test_zero_rate_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.take("a") == 0 for _ in range(1000))


def test_buckets_are_bounded() -> None:
    from signer.service import limits

    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    for i in range(limits.MAX_BUCKETS + 50):
        limiter.take(f"k{i}")
    assert len(limiter._buckets) == limits.MAX_BUCKETS
