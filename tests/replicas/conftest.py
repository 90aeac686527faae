"""Several replicas of the service over one database and one data directory (one CA)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from signer.service.auth import POLICY_CACHE_SECONDS
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, database, init

# Replica A runs one worker process, replica B two: three processes share the store and CA.
REPLICA_WORKERS = (1, 2)
POLICY_PROPAGATION_SECONDS = 10.0


@dataclass
class Cluster:
    backend: str
    replicas: list[Service]
    issuer: FakeGitHubIssuer

    def tenant(self) -> Tenant:
        """A fresh namespace (made on replica A), usable on every replica."""
        tenant = self.replicas[0].tenant(owner="acme")
        # Other replicas (and the other worker processes) cache policies for a moment: wait
        # that long, then check that each replica accepts a token of the new namespace.
        time.sleep(POLICY_CACHE_SECONDS + 0.2)
        token = self.issuer.token()
        for replica in self.replicas:
            deadline = time.monotonic() + POLICY_PROPAGATION_SECONDS
            while True:
                answer = requests.get(f"{replica.url}/v1/signatures", timeout=30,
                                      params={"namespace": tenant.namespace},
                                      headers={"Authorization": f"Bearer {token}"})
                if answer.status_code == 200:
                    break
                assert time.monotonic() < deadline, (replica.url, answer.status_code,
                                                     answer.text)
                time.sleep(0.2)
        return tenant


@pytest.fixture(scope="module")
def cluster(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory, backend: str
            ) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp(f"replicas-{backend}") / "data"
    with database(backend) as url:
        admin_key = init(data_dir, url)
        replicas = [Service(data_dir, admin_key, issuer.url, database_url=url, workers=workers)
                    for workers in REPLICA_WORKERS]
        # Behind a load balancer every replica is the same service to its clients: one public
        # URL (it names the transparency log in checkpoints, and the API-key issuer).
        for replica in replicas:
            replica.extra_args += ["--public-url", replicas[0].url]
        try:
            for replica in replicas:
                replica.start()
            yield Cluster(backend, replicas, issuer)
        finally:
            for replica in replicas:
                replica.stop()
