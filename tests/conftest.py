from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, init


@pytest.fixture(scope="session")
def issuer() -> Iterator[FakeGitHubIssuer]:
    fake = FakeGitHubIssuer()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def service(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    """One real service on loopback (SQLite) for the session."""
    data_dir = tmp_path_factory.mktemp("service") / "data"
    svc = Service(data_dir, init(data_dir), issuer.url)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def tenant(service: Service) -> Tenant:
    return service.tenant()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
