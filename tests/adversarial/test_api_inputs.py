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
    if response.status_code >= 400 or where == "policy issuer":  # a lookup may find nothing
        assert_refused(response)


# Every number a log route takes reaches the database as a BIGINT: beyond it SQLite raises
# OverflowError and PostgreSQL an out-of-range error, so the routes bound them (a 422).
LOG_NUMBERS = {
    "logIndex": ("GET", "/api/v1/log/entries", "logIndex", None),
    "logIndexes": ("POST", "/api/v1/log/entries/retrieve", None, "logIndexes"),
    "checkpoint size": ("GET", "/api/v1/log/checkpoints/{n}", None, None),
    "proof lastSize": ("GET", "/api/v1/log/proof", "lastSize", None),
    "proof firstSize": ("GET", "/api/v1/log/proof", "firstSize", None),
    "CT consistency": ("GET", "/ct/v1/get-sth-consistency", "second", None),
    "CT proof tree_size": ("GET", "/ct/v1/get-proof-by-hash", "tree_size", None),
    "CT entries": ("GET", "/ct/v1/get-entries", "end", None),
}


@pytest.mark.parametrize("number", [2**63, 2**70, -(2**70)])
@pytest.mark.parametrize("where", list(LOG_NUMBERS))
def test_log_numbers_beyond_64_bits_are_refused(service: Service, tenant: Tenant, where: str,
                                                number: int) -> None:
    method, path, param, field = LOG_NUMBERS[where]
    params = ({"lastSize": "1", "first": "0", "start": "0", "hash": "AA==", param: str(number)}
              if param else {})
    response = requests.request(
        method, service.url + path.format(n=number), params=params, timeout=30,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        json={field: [number]} if field else None)
    assert_refused(response)
