"""The service's TUF repository, read by unmodified sigstore-python (``sigstore --instance``
after ``sigstore trust-instance``) and by python-tuf's client over HTTP: the targets are the
trust root and signing config the API serves; a key rotation reaches clients that trust the
first root; a tampered target is refused; an expired timestamp is renewed by the service."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from tuf.api.exceptions import RepositoryError
from tuf.ngclient import Updater

from signer.service import tuf_repository
from signer.service.config import SIGSTORE_AUDIENCE
from tests import softhsm
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.interop.conftest import Signed
from tests.interop.test_sigstore_python import SIGSTORE
from tests.service_process import SIGNER, Service, Tenant, clean_env, init

pytestmark = pytest.mark.integration


def sigstore(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The sigstore CLI with its own TUF data and cache directories (platformdirs: XDG)."""
    env = clean_env(XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"))
    return subprocess.run([SIGSTORE, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def trust_instance(service: Service, home: Path) -> None:
    """What a user does once: trust the first root, which the operator handed out."""
    root = service.data_dir / "tuf" / "1.root.json"
    done = sigstore(["--instance", f"{service.url}/tuf", "trust-instance", str(root)], home,
                    home.parent)
    assert done.returncode == 0, done.stderr


def verify(service: Service, home: Path, artifact: Path, bundle: Path, identity: str,
           issuer: str) -> subprocess.CompletedProcess[str]:
    """``sigstore --instance`` verification: the trust root comes from TUF, nothing copied."""
    return sigstore(["--instance", f"{service.url}/tuf", "verify", "identity", str(artifact),
                     "--bundle", str(bundle), "--cert-identity", identity,
                     "--cert-oidc-issuer", issuer], home, artifact.parent)


def updater(service: Service, directory: Path) -> Updater:
    """python-tuf's client, trusting root version 1, fetching over HTTP."""
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    (directory / "targets").mkdir(parents=True, exist_ok=True)
    client = Updater(str(directory / "metadata"), f"{service.url}/tuf/",
                     str(directory / "targets"), f"{service.url}/tuf/targets/",
                     bootstrap=(service.data_dir / "tuf" / "1.root.json").read_bytes())
    client.refresh()
    return client


def target(client: Updater, name: str) -> bytes:
    info = client.get_targetinfo(name)
    assert info is not None, name
    return Path(client.download_target(info)).read_bytes()


def served(service: Service) -> tuple[bytes, bytes]:
    """What /v1 serves: the trust root, and the signing config of the client trust config."""
    root = service.get("/v1/trust-root")
    config = service.get("/v1/trust-config")
    assert root.status_code == config.status_code == 200
    return root.content, json.dumps(config.json()["signingConfig"]).encode()


def test_sigstore_instance_verifies_through_tuf(service: Service, signed: Signed,
                                                tmp_path: Path) -> None:
    home = tmp_path / "home"
    trust_instance(service, home)
    done = verify(service, home, signed.file, signed.bundle, signed.identity, signed.issuer)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same verification, another identity: refused, so the trust root was really used.
    other = verify(service, home, signed.file, signed.bundle, "repo:acme/other:ref:refs/x",
                   signed.issuer)
    assert other.returncode != 0


def test_targets_are_what_the_api_serves(service: Service, tmp_path: Path) -> None:
    client = updater(service, tmp_path)
    root, signing_config = served(service)
    assert target(client, "trusted_root.json") == root
    assert json.loads(target(client, "signing_config.v0.2.json")) == json.loads(signing_config)


def test_unknown_names_are_problems(service: Service) -> None:
    for name in ("%2E%2E/keys/tuf-targets.key", "targets/%2E%2E%2F%2E%2E%2Ftuf-root.key",
                 "2.root.json", "targets/" + "0" * 64 + ".x", ".published-url"):
        answer = service.get(f"/tuf/{name}")
        assert answer.status_code == 404, name
        assert "TUF repository has no file" in answer.json()["detail"]


# -- a service of its own: rotation, tampering and expiry change its repository ---------------
@pytest.fixture(scope="module")
def own(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("tuf-service") / "data"
    svc = Service(data_dir, init(data_dir), issuer.url)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def sign(service: Service, tenant: Tenant, issuer: FakeGitHubIssuer, workdir: Path, name: str
         ) -> tuple[Path, Path, str]:
    artifact = workdir / f"{name}.txt"
    artifact.write_text(f"artifact {name}\n")
    bundle = workdir / f"{name}.sigstore.json"
    done = service.cli("artifact", "sign", "--file", str(artifact), "--bundle", str(bundle),
                       "--enable-github-action-token", "--output", "json", cwd=workdir,
                       env={**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace})
    assert done.returncode == 0, done.stderr
    return artifact, bundle, json.loads(done.stdout)["identity"]


def targets_version(service: Service) -> int:
    snapshot = requests.get(f"{service.url}/tuf/timestamp.json", timeout=10).json()
    version = snapshot["signed"]["meta"]["snapshot.json"]["version"]
    meta = requests.get(f"{service.url}/tuf/{version}.snapshot.json", timeout=10).json()
    return int(meta["signed"]["meta"]["targets.json"]["version"])


def test_rotation_reaches_clients_of_the_first_root(own: Service, issuer: FakeGitHubIssuer,
                                                     tmp_path: Path) -> None:
    tenant = own.tenant()
    home = tmp_path / "home"
    trust_instance(own, home)
    before = sign(own, tenant, issuer, tmp_path, "before")
    client_dir = tmp_path / "python-tuf"
    first = json.loads(target(updater(own, client_dir), "trusted_root.json"))
    assert len(first["certificateAuthorities"]) == 1
    version = targets_version(own)

    done = subprocess.run([SIGNER, "server", "rotate-key", "--data-dir", str(own.data_dir), "ca"],
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"targets version {version + 1}" in done.stderr
    # At once, while the service still runs with the old keys: the new trust root is the
    # target, and a client that knows only root 1 (and its cached metadata) updates to it.
    rotated = json.loads(target(updater(own, client_dir), "trusted_root.json"))
    assert len(rotated["certificateAuthorities"]) == 2
    assert own.get("/tuf/2.root.json").status_code == 404  # the root did not change

    own.stop()
    own.start()
    assert targets_version(own) == version + 1  # the restart published the same: no change
    assert target(updater(own, client_dir), "trusted_root.json") == served(own)[0]
    after = sign(own, tenant, issuer, tmp_path, "after")  # by the new CA key
    for artifact, bundle, identity in (before, after):
        done = verify(own, home, artifact, bundle, identity, issuer.url)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_tampered_target_is_refused(own: Service, tmp_path: Path) -> None:
    info = updater(own, tmp_path / "probe").get_targetinfo("trusted_root.json")
    assert info is not None
    path = own.data_dir / "tuf" / "targets" / f"{info.hashes['sha256']}.trusted_root.json"
    original = path.read_bytes()
    assert b'"signer CA"' in original
    path.write_bytes(original.replace(b'"signer CA"', b'"mallory!!"'))  # same length
    try:
        with pytest.raises(RepositoryError, match="hash"):
            target(updater(own, tmp_path / "client"), "trusted_root.json")
        root = own.data_dir / "tuf" / "1.root.json"
        done = sigstore(["--instance", f"{own.url}/tuf", "trust-instance", str(root)],
                        tmp_path / "home", tmp_path)
        assert done.returncode != 0
        assert "Failed to download trusted key bundle" in done.stdout + done.stderr
    finally:
        path.write_bytes(original)


def test_an_expired_timestamp_is_renewed_by_the_service(own: Service, tmp_path: Path) -> None:
    repository = tuf_repository.load(own.data_dir, None)
    assert repository is not None
    with repository.locked():  # as if nobody asked for two days
        repository.commit(None, datetime.now(UTC) - timedelta(days=2))
    stale = repository.timestamp().signed
    assert stale.expires < datetime.now(UTC)
    answer = requests.get(f"{own.url}/tuf/timestamp.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-cache"
    fresh = json.loads(answer.content)["signed"]
    assert fresh["version"] == stale.version + 1
    assert datetime.fromisoformat(fresh["expires"]) > datetime.now(UTC) + timedelta(hours=23)
    updater(own, tmp_path / "client")  # refreshes without an ExpiredMetadataError


def test_a_data_dir_from_before_gets_its_repository_with_tuf_init(
        issuer: FakeGitHubIssuer, tmp_path: Path) -> None:
    """A data directory made before the TUF repository existed: the service runs without it
    and says how to add it; 'signer tuf init' adds it and the next start publishes."""
    softhsm.file_keys_only()  # such a directory had key files: token keys came with TUF
    data_dir = tmp_path / "data"
    svc = Service(data_dir, init(data_dir), issuer.url)
    for made_by_init in ("tuf-root.key", "keys/tuf-targets.key", "keys/tuf-snapshot.key",
                         "keys/tuf-timestamp.key"):
        (data_dir / made_by_init).unlink()
    shutil.rmtree(data_dir / "tuf")
    svc.start()
    try:
        missing = svc.get("/tuf/timestamp.json")
        assert missing.status_code == 404
        assert "signer tuf init" in missing.json()["detail"]
        done = subprocess.run([SIGNER, "tuf", "init", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, env=clean_env(), timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"TUF root key: {data_dir / 'tuf-root.key'}" in done.stderr
        again = subprocess.run([SIGNER, "tuf", "init", "--data-dir", str(data_dir)],
                               capture_output=True, text=True, env=clean_env(), timeout=60)
        assert again.returncode != 0
        assert "TUF repository already" in again.stderr
        svc.stop()
        svc.start()
        assert target(updater(svc, tmp_path / "client"), "trusted_root.json") == served(svc)[0]
    finally:
        svc.stop()


def test_sigstore_instance_signs_through_tuf(service: Service, issuer: FakeGitHubIssuer,
                                             tmp_path: Path) -> None:
    """``sigstore --instance URL sign``: the signing config comes from TUF too (the root's
    services: Fulcio picks the namespace the token's policies admit), no file copied."""
    owner = f"tuf-{uuid.uuid4().hex[:8]}"
    tenant = service.tenant(owner=owner)
    home = tmp_path / "home"
    trust_instance(service, home)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"signed through the instance's TUF repository\n")
    bundle = tmp_path / "release.tar.gz.sigstore.json"
    token = issuer.token(aud=SIGSTORE_AUDIENCE, repository=f"{owner}/app")
    done = sigstore(["--instance", f"{service.url}/tuf", "sign", "--identity-token", token,
                     "--bundle", str(bundle), str(artifact)], home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    identity = f"repo:{owner}/app:ref:refs/tags/v1.2.3"
    verified = verify(service, home, artifact, bundle, identity, issuer.url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = service.cli("artifact", "list", "--namespace", tenant.namespace, "--api-key",
                         tenant.api_key, "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() in listed.stdout
