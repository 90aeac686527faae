from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, database, init


@pytest.fixture(scope="session")
def issuer() -> Iterator[FakeGitHubIssuer]:
    fake = FakeGitHubIssuer()
    yield fake
    fake.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every integration test runs against both stores."""
    return str(request.param)


@pytest.fixture(scope="session")
def service(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory, backend: str
            ) -> Iterator[Service]:
    """One real service on loopback for the session, on SQLite or on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"service-{backend}") / "data"
    with database(backend) as url:
        svc = Service(data_dir, init(data_dir, url), issuer.url, database_url=url)
        svc.start()
        yield svc
        svc.stop()


@pytest.fixture(scope="module")
def github_service(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory,
                   backend: str) -> Iterator[Service]:
    """A service whose operator declared the fake issuer a github kind on https://github.com
    (as for github.com or GHES tokens), so provenance URLs are the ones gh compares."""
    data_dir = tmp_path_factory.mktemp(f"github-{backend}") / "data"
    with database(backend) as url:
        svc = Service(data_dir, init(data_dir, url), issuer.url, database_url=url,
                      issuer_kind=None)
        svc.start()
        done = svc.cli("issuer", "add", "--url", issuer.url, "--type", "github",
                       "--server-url", "https://github.com", "--allow-http",
                       env={"SIGNER_API_KEY": svc.admin_key})
        assert done.returncode == 0, done.stderr
        yield svc
        svc.stop()


@pytest.fixture
def tenant(service: Service) -> Tenant:
    return service.tenant()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
