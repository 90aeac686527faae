"""The server admin key can be rotated by the operator, with the service running.

``signer server rotate-admin-key`` needs the data directory and the database, not the old
key (so it serves when the key is lost or stolen); the old key stops working at once, the
new one works at once, namespace keys are untouched, and the new key is printed once.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import SIGNER, Service, clean_env, init

pytestmark = pytest.mark.integration


def _rotate(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNER, "server", "rotate-admin-key", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=60, env=clean_env())


def test_rotating_the_admin_key_while_the_service_runs(issuer: FakeGitHubIssuer,
                                                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    svc = Service(data, init(data), issuer.url)
    svc.start()
    try:
        old = svc.admin_key
        tenant = svc.tenant()
        rotated = _rotate(data)
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip()
        assert new.startswith("sgk_") and new != old
        assert "revoked 1 admin key" in rotated.stderr and new not in rotated.stderr
        assert svc.get("/v1/namespaces", old).status_code == 401
        assert svc.get("/v1/namespaces", new).status_code == 200
        assert svc.get("/v1/signatures", tenant.api_key,
                       params={"namespace": tenant.namespace}).status_code == 200
        # Twice in a row: the previous new key is the one revoked now; one admin key remains.
        again = _rotate(data)
        assert again.returncode == 0 and svc.get("/v1/namespaces", new).status_code == 401
        newest = again.stdout.strip()
        assert svc.get("/v1/namespaces", newest).status_code == 200
        active = svc.sql("SELECT count(*) FROM api_keys WHERE namespace IS NULL "
                         "AND revoked_at IS NULL")
        assert active == [(1,)]
    finally:
        svc.stop()


def test_rotating_an_uninitialized_directory_says_what_to_do(tmp_path: Path) -> None:
    done = _rotate(tmp_path / "nothing")
    assert done.returncode == 2 and "signer server init" in done.stderr
    assert "Traceback" not in done.stderr
