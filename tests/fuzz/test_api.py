"""Schemathesis against the running service (a short run; bench/fuzz_api.py is the long one).

Zero 5xx and zero schema violations, on SQLite and on PostgreSQL, with a tenant's API key
(and the admin key, and no key) so that authenticated paths are exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.fuzz import api
from tests.service_process import Service, database, init

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

# Generated cases per operation and pass: about 500 requests per backend.
EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzzed(issuer: FakeGitHubIssuer, backend: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Service]:
    """A service of its own, without the rate limit (a fuzzer is one very busy principal)."""
    data: Path = tmp_path_factory.mktemp(f"fuzz-{backend}") / "data"
    with database(backend) as url:
        svc = Service(data, init(data, url), issuer.url, database_url=url,
                      env={"SIGNER_RATE_LIMIT": "0"})
        svc.start()
        try:
            yield svc
        finally:
            svc.stop()


def test_openapi_fuzzing_finds_no_5xx_and_no_schema_violation(fuzzed: Service,
                                                              backend: str) -> None:
    tenant = fuzzed.tenant()
    report = api.run(fuzzed.url, tenant.api_key, tenant.namespace, fuzzed.admin_key, EXAMPLES)
    print(f"\n{backend}: {report.summary()}")
    assert report.requests >= 400
    assert report.server_errors == [], "\n".join(report.server_errors[:10])
    assert report.violations == [], "\n".join(report.violations[:10])
    # The service is still healthy and answers as before.
    assert fuzzed.get("/readyz").status_code == 200
