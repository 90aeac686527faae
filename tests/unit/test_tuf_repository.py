"""The TUF repository of the trust root: python-tuf's own client (ngclient.Updater) reads it,
through the names the service serves, and accepts or refuses what a client should."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError, ExpiredMetadataError, RepositoryError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from signer.errors import Conflict, NotFound, UsageError
from signer.service import tuf_repository
from signer.service.tuf_repository import Repository

BASE = "https://signer.test/tuf/"
TARGETS = {tuf_repository.TRUSTED_ROOT_TARGET: b'{"mediaType": "trusted root v1"}',
           tuf_repository.SIGNING_CONFIG_TARGET: b'{"mediaType": "signing config"}'}


class ServedBy(FetcherInterface):
    """Fetches as a client over HTTP would, through :meth:`Repository.read` (its name checks,
    its timestamp renewal); a refused name is the 404 the route answers."""

    def __init__(self, repository: Repository, static: bool = False) -> None:
        self.repository = repository
        self.static = static  # a plain file mirror: no renewal

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.removeprefix(BASE)
        try:
            if self.static:
                return iter([(self.repository.path / name).read_bytes()])
            return iter([self.repository.read(name)])
        except (NotFound, FileNotFoundError) as exc:
            raise DownloadHTTPError(str(exc), 404) from exc


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "data" / "keys").mkdir(parents=True, mode=0o700)
    return tmp_path / "data"


@pytest.fixture
def repository(data_dir: Path) -> Repository:
    tuf_repository.initialize(data_dir, None)
    loaded = tuf_repository.load(data_dir, None)
    assert loaded is not None
    assert loaded.publish(TARGETS, "https://signer.test") == 2
    return loaded


def client(repository: Repository, tmp_path: Path, name: str = "client", static: bool = False
           ) -> Updater:
    """A client that trusts root version 1 (what 'sigstore trust-instance' is given)."""
    metadata, targets = tmp_path / name / "metadata", tmp_path / name / "targets"
    metadata.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    return Updater(str(metadata), BASE, str(targets), BASE + "targets/", ServedBy(repository, static),
                   bootstrap=(repository.path / "1.root.json").read_bytes())


def download(updater: Updater, name: str) -> bytes:
    info = updater.get_targetinfo(name)
    assert info is not None, name
    return Path(updater.download_target(info)).read_bytes()


def test_a_client_with_the_root_gets_both_targets(repository: Repository, data_dir: Path,
                                                  tmp_path: Path) -> None:
    updater = client(repository, tmp_path)
    updater.refresh()
    assert {name: download(updater, name) for name in TARGETS} == TARGETS
    root = repository.root().signed
    assert root.consistent_snapshot
    # Root: the operator's key, outside keys/; the other roles: the service's keys.
    key = data_dir / "tuf-root.key"
    assert key.stat().st_mode & 0o777 == 0o600
    for role in ("targets", "snapshot", "timestamp"):
        assert (data_dir / "keys" / f"tuf-{role}.key").stat().st_mode & 0o777 == 0o600
        assert root.roles[role].keyids != root.roles["root"].keyids


def test_initialize_refuses_twice_and_encrypts_with_the_passphrase(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(UsageError, match="not initialized"):
        tuf_repository.initialize(data_dir, None)
    (data_dir / "keys").mkdir(parents=True)
    path = tuf_repository.initialize(data_dir, b"secret words")
    assert b"ENCRYPTED" in path.read_bytes()
    with pytest.raises(Conflict, match="TUF repository already"):
        tuf_repository.initialize(data_dir, b"secret words")
    with pytest.raises(UsageError, match="encrypted"):
        tuf_repository.load(data_dir, None)
    assert tuf_repository.load(data_dir, b"secret words") is not None


def test_publishing_the_same_targets_again_changes_nothing(repository: Repository) -> None:
    before = repository.timestamp().signed.version
    assert repository.publish(TARGETS, "https://signer.test") is None
    assert repository.timestamp().signed.version == before
    assert repository.published_url() == "https://signer.test"


def test_new_targets_reach_a_client_that_updated_before(repository: Repository,
                                                       tmp_path: Path) -> None:
    updater = client(repository, tmp_path)
    updater.refresh()
    assert download(updater, tuf_repository.TRUSTED_ROOT_TARGET) == TARGETS[
        tuf_repository.TRUSTED_ROOT_TARGET]
    rotated = {**TARGETS, tuf_repository.TRUSTED_ROOT_TARGET: b'{"rotated": true}'}
    assert repository.publish(rotated, "https://signer.test") == 3
    again = client(repository, tmp_path)  # same metadata directory: it knows version 2
    again.refresh()
    assert download(again, tuf_repository.TRUSTED_ROOT_TARGET) == b'{"rotated": true}'
    assert sorted(p.name for p in repository.path.glob("*.root.json")) == ["1.root.json"]


def test_a_tampered_target_is_refused(repository: Repository, tmp_path: Path) -> None:
    info = repository.targets().signed.targets[tuf_repository.TRUSTED_ROOT_TARGET]
    path = repository.path / "targets" / f"{info.hashes['sha256']}.trusted_root.json"
    path.write_bytes(path.read_bytes().replace(b"v1", b"v2"))  # same length, other bytes
    updater = client(repository, tmp_path)
    updater.refresh()
    with pytest.raises(RepositoryError):
        download(updater, tuf_repository.TRUSTED_ROOT_TARGET)


def test_tampered_metadata_is_refused(repository: Repository, tmp_path: Path) -> None:
    version = repository.targets().signed.version
    path = repository.path / f"{version}.targets.json"
    data = json.loads(path.read_text())
    data["signed"]["targets"]["trusted_root.json"]["length"] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(RepositoryError):
        client(repository, tmp_path).refresh()


@pytest.mark.parametrize(("after", "renewed"), [
    (timedelta(hours=11), set()),
    (timedelta(hours=13), {"timestamp"}),
    (timedelta(days=4), {"timestamp", "snapshot"}),
    (timedelta(days=46), {"timestamp", "snapshot", "targets"}),
])
def test_the_service_renews_what_it_signs_before_it_expires(
        repository: Repository, after: timedelta, renewed: set[str]) -> None:
    def versions() -> dict[str, int]:
        return {"timestamp": repository.timestamp().signed.version,
                "snapshot": repository.snapshot().signed.version,
                "targets": repository.targets().signed.version}

    before = versions()
    targets = repository.targets().signed.targets
    assert repository.refresh(datetime.now(UTC) + after) is bool(renewed)
    now = versions()
    assert {role for role in now if now[role] != before[role]} == renewed
    assert repository.targets().signed.targets == targets  # renewed, not changed


def test_a_stale_timestamp_is_renewed_when_a_client_asks(repository: Repository,
                                                        tmp_path: Path) -> None:
    """A copy of the repository left alone expires; the service renews on the client's fetch."""
    with repository.locked():  # as if signed two days ago: the timestamp expired yesterday
        repository.commit(None, datetime.now(UTC) - timedelta(days=2))
    assert repository.timestamp().signed.expires < datetime.now(UTC)
    shutil.copytree(repository.path, tmp_path / "mirror")
    with pytest.raises(ExpiredMetadataError):  # a static copy, with no one to re-sign it
        client(Repository(tmp_path / "mirror", {}), tmp_path, "static", static=True).refresh()
    client(repository, tmp_path, "served").refresh()  # the fetch of timestamp.json renewed it
    assert repository.timestamp().signed.expires > datetime.now(UTC) + timedelta(hours=23)


@pytest.mark.parametrize("name", ["../keys/tuf-targets.key", "targets/../../tuf-root.key",
                                  ".published-url", "root.json", "0.root.json",
                                  "targets/trusted_root.json", "2.targets.json/x"])
def test_only_repository_names_are_served(repository: Repository, name: str) -> None:
    with pytest.raises(NotFound):
        repository.read(name)


def test_keys_that_the_root_does_not_name_are_refused(repository: Repository,
                                                     data_dir: Path) -> None:
    keys = data_dir / "keys"
    (keys / "tuf-timestamp.key").unlink()
    shutil.copy(keys / "tuf-snapshot.key", keys / "tuf-timestamp.key")
    with pytest.raises(UsageError, match="not the timestamp key"):
        tuf_repository.load(data_dir, None)


def test_the_operator_renews_the_root_and_clients_follow(repository: Repository,
                                                         data_dir: Path, tmp_path: Path) -> None:
    updater = client(repository, tmp_path)
    updater.refresh()
    later = datetime.now(UTC) + timedelta(days=300)
    renewed = tuf_repository.renew_root(data_dir, data_dir / "tuf-root.key", None, later)
    assert renewed.signed.version == 2
    assert renewed.signed.expires > later + timedelta(days=364)
    again = client(repository, tmp_path)  # knows root 1: fetches 2.root.json, checks it
    again.refresh()
    assert (tmp_path / "client" / "metadata" / "root.json").read_bytes() == (
        repository.path / "2.root.json").read_bytes()
    assert download(again, tuf_repository.TRUSTED_ROOT_TARGET) == TARGETS[
        tuf_repository.TRUSTED_ROOT_TARGET]


def test_only_the_root_key_renews_the_root(repository: Repository, data_dir: Path) -> None:
    with pytest.raises(UsageError, match="not the root key"):
        tuf_repository.renew_root(data_dir, data_dir / "keys" / "tuf-targets.key", None)
    assert not (repository.path / "2.root.json").exists()
