"""Inputs that reach the database unvalidated: never a 500 (a 4xx, or a harmless answer).

Found by the schemathesis run (tests/fuzz) and pinned here, one request per case, so the
fuzzer can skip what is already known (tests/fuzz/api.py: known_bug) and these stay red
until fixed.
"""

from __future__ import annotations

import pytest
import requests

from tests.adversarial.builders import assert_refused
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

NUL_BUG = (
    "PostgreSQL text cannot hold NUL: psycopg raises DataError, which no handler maps (a "
    "500). Path ids, name_prefix, API key ids and policy fields reach store.* unchecked. "
    "Fix: one handler in problems.install for sqlalchemy.exc.DataError -> 400 ('a value is "
    "not valid text'), and/or patterns on the route parameters (ids are 32 hex, prefixes "
    "use the artifact-name alphabet).")


def _nul_requests(service: Service, tenant: Tenant) -> dict[str, requests.Response]:
    user = {"Authorization": f"Bearer {tenant.api_key}"}
    admin = {"Authorization": f"Bearer {service.admin_key}"}
    ns, url = tenant.namespace, service.url
    return {
        "signature id": requests.get(f"{url}/v1/signatures/ab%00cd", params={"namespace": ns},
                                     headers=user, timeout=30),
        "name prefix": requests.get(f"{url}/v1/signatures", headers=user, timeout=30,
                                    params={"namespace": ns, "name_prefix": "ghcr\x00"}),
        "API key id": requests.delete(f"{url}/v1/namespaces/{ns}/api-keys/a%00b",
                                      headers=admin, timeout=30),
        "policy issuer": requests.post(f"{url}/v1/namespaces/{ns}/policies", headers=admin,
                                       timeout=30, json={"issuer": "https://iss\x00uer.example",
                                                         "claims": {"repository": "a"},
                                                         "permissions": ["sign"]}),
    }


@pytest.mark.parametrize("where", ["signature id", "name prefix", "API key id",
                                   "policy issuer"])
def test_nul_characters_are_refused(service: Service, tenant: Tenant,
                                    request: pytest.FixtureRequest, where: str) -> None:
    response = _nul_requests(service, tenant)[where]
    assert response.status_code < 500, response.text[:200]
    if response.status_code >= 400:
        assert_refused(response)


LOG_INDEX_BUG = (
    "log_api passes logIndex values straight to the database: beyond 64 bits SQLite raises "
    "OverflowError and PostgreSQL an out-of-range error, a 500. Fix: bound the models "
    "(Field(ge=0, le=2**63 - 1) on logIndex / logIndexes items) so they are a 422.")


@pytest.mark.parametrize("how", ["query", "retrieve"])
def test_log_indexes_beyond_64_bits_are_refused(service: Service, tenant: Tenant,
                                                how: str) -> None:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    if how == "query":
        response = requests.get(f"{service.url}/api/v1/log/entries", headers=headers,
                                params={"logIndex": str(2**70)}, timeout=30)
    else:
        response = requests.post(f"{service.url}/api/v1/log/entries/retrieve", headers=headers,
                                 json={"logIndexes": [-(2**70)]}, timeout=30)
    assert_refused(response)
