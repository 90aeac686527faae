"""The Rekor v2 log of a real service on loopback, on SQLite and PostgreSQL: its C2SP read API
read over HTTP by the independent reader, its checkpoint verified with the trust root's key
(by signer and by sigstore-python), and ``signer log verify --v2`` passing, then catching a
rollback and a fork made in the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sigstore._internal.rekor.checkpoint import SignedCheckpoint
from sigstore._internal.trust import KeyringPurpose
from sigstore._utils import KeyID
from sigstore.models import TrustedRoot

from signer import trust as trust_root
from signer.service import bootstrap, database, keyring
from signer.service.config import Settings
from signer.service.log import LogItem, Sequenced
from signer.service.log.tiles import TileLog
from signer.service.store import Transaction
from signer.transparency import note
from signer.verification.checkpoints import verify_tile_checkpoint
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, init
from tests.service_process import database as fresh_database
from tests.tiles import c2sp_reader as reader

pytestmark = pytest.mark.integration
SIZE = 300  # a full level-0 tile, a partial one, and a partial level-1 tile


@pytest.fixture(scope="module")
def service(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory, backend: str
            ) -> Iterator[Service]:
    """A service of this module's own: the tests tamper with its database."""
    data_dir = tmp_path_factory.mktemp(f"tiles-{backend}") / "data"
    with fresh_database(backend) as url:
        svc = Service(data_dir, init(data_dir, url), issuer.url, database_url=url)
        svc.start()
        yield svc
        svc.stop()


@pytest.fixture(scope="module")
def engine(service: Service) -> Iterator[sa.Engine]:
    engine = database.create_engine(database.database_url(service.database_url,
                                                          service.data_dir))
    yield engine
    engine.dispose()


def replica_log(service: Service, engine: sa.Engine) -> TileLog:
    """The service's v2 log as another replica holds it: same database, same key."""
    settings = Settings(data_dir=service.data_dir, database_url=service.database_url,
                        public_url=service.url)
    log = bootstrap.transparency_log(settings, engine, "tlog2",
                                     keyring.load(settings.layout, "tlog2", None))
    assert isinstance(log, TileLog)
    return log


def append(log: TileLog, count: int, tag: str = "a") -> list[Sequenced]:
    def keep(_: Transaction, entry: Sequenced) -> Sequenced:
        return entry
    start = log.head().size
    return [log.append(LogItem("hashedrekord", "0.0.2", f'{{"{tag}":{start + i}}}'.encode(),
                               keep)) for i in range(count)]


def fetch_over_http(service: Service) -> reader.Fetch:
    def fetch(path: str) -> bytes:
        answer = requests.get(f"{service.url}/api/v2/{path}", timeout=30)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        return answer.content
    return fetch


def checkpoint(service: Service) -> str:
    answer = requests.get(f"{service.url}/api/v2/checkpoint", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=1"
    return answer.text


def test_tiles_over_http_rebuild_the_signed_tree(service: Service, engine: sa.Engine,
                                                 tmp_path: Path) -> None:
    log = replica_log(service, engine)
    start = log.head().size
    appended = append(log, SIZE - start) if start < SIZE else []
    envelope = checkpoint(service)
    origin, size, root = reader.parse_checkpoint_body(envelope)
    assert (origin, size) == ("127.0.0.1", SIZE)
    entries, tile_root = reader.read_log(fetch_over_http(service), size)
    assert tile_root == root == reader.mth([reader.leaf(e) for e in entries])
    assert entries[start:] == [e.body for e in appended]

    # The trust root lists the key: logId = checkpointKeyId = the C2SP key id of the note.
    served = requests.get(f"{service.url}/v1/trust-root", timeout=30).text
    [v2] = [t for t in json.loads(served)["tlogs"] if "checkpointKeyId" in t]
    assert v2["logId"] == v2["checkpointKeyId"]
    assert v2["baseUrl"] == service.url
    material = trust_root.parse(served)
    verified, instance = verify_tile_checkpoint(envelope, material)
    assert (verified.size, verified.root_hash) == (SIZE, root)
    assert instance.log_id.key_id == note.log_id("127.0.0.1", log.signer.public_key)
    assert note.parse_note(envelope).signatures[0].key_id == instance.log_id.key_id[:4]

    # sigstore-python's checkpoint verification, with the keyring it builds from the file.
    path = tmp_path / "trusted_root.json"
    path.write_text(served)
    keys = TrustedRoot.from_file(str(path)).rekor_keyring(KeyringPurpose.VERIFY)
    SignedCheckpoint.from_text(envelope).signed_note.verify(keys,
                                                            KeyID(instance.log_id.key_id))


def test_bad_tile_paths_are_problems_and_missing_tiles_404(service: Service) -> None:
    size = reader.parse_checkpoint_body(checkpoint(service))[1]
    answer = requests.get(f"{service.url}/api/v2/tile/0/1", timeout=30)
    assert answer.status_code == 400, answer.text
    assert "x-prefixed 3-digit groups" in answer.json()["detail"]
    beyond = reader.tile_path(0, size // 256, size % 256 + 1)
    answer = requests.get(f"{service.url}/api/v2/{beyond}", timeout=30)
    assert answer.status_code == 404, answer.text
    assert "Fetch the checkpoint first" in answer.json()["detail"]


def test_log_verify_passes_then_detects_rollback_and_fork(service: Service, engine: sa.Engine,
                                                          tmp_path: Path) -> None:
    log = replica_log(service, engine)
    append(log, 3)
    roots = tmp_path / "trusted_root.json"
    roots.write_text(requests.get(f"{service.url}/v1/trust-root", timeout=30).text)
    state = tmp_path / "v2-checkpoint.txt"

    def verify() -> tuple[int, dict[str, object]]:
        done = service.cli("log", "verify", "--v2", "--trust-root", str(roots),
                           "--checkpoint", str(state), "--output", "json")
        return done.returncode, json.loads(done.stdout)

    code, first = verify()
    assert code == 0 and first["ok"], first
    append(log, 40)
    code, grown = verify()
    assert code == 0, grown
    assert grown["previous_size"] == first["tree_size"]
    saved = state.read_text()

    # Rollback: the head moved back to an earlier signed checkpoint, entries beyond dropped.
    back_to = int(str(first["tree_size"]))
    rollback(engine, back_to)
    code, rolled = verify()
    assert code == 1 and "shrank" in str(rolled["message"]), rolled

    # Fork: from there the log grows again with other entries, past the saved size.
    append(replica_log(service, engine), 60, tag="fork")
    state.write_text(saved)
    code, forked = verify()
    assert code == 1, forked
    assert "does not extend the saved size" in str(forked["message"]), forked


def rollback(engine: sa.Engine, size: int) -> None:
    """What a faulty restore or a malicious operator does to the tree rows."""
    with engine.begin() as tx:
        row = tx.execute(sa.text("SELECT root_hash, envelope FROM log_checkpoints "
                                 "WHERE tree = 'tlog2' AND size = :s"), {"s": size}).one()
        tx.execute(sa.text("UPDATE log_trees SET size = :s, root_hash = :r, checkpoint = :c "
                           "WHERE name = 'tlog2'"), {"s": size, "r": row[0], "c": row[1]})
        tx.execute(sa.text("DELETE FROM log_entries WHERE tree = 'tlog2' AND idx >= :s"),
                   {"s": size})
        tx.execute(sa.text("DELETE FROM log_checkpoints WHERE tree = 'tlog2' AND size > :s"),
                   {"s": size})
        # Nodes reaching past the new size (a right border and everything after it).
        for level, idx in tx.execute(sa.text("SELECT level, idx FROM log_nodes "
                                             "WHERE tree = 'tlog2'")).all():
            if (idx + 1) << level > size:
                tx.execute(sa.text("DELETE FROM log_nodes WHERE tree = 'tlog2' AND "
                                   "level = :l AND idx = :i"), {"l": level, "i": idx})


def test_rotating_the_v2_key_keeps_the_tree_and_the_monitor_follows(
        service: Service, engine: sa.Engine, tmp_path: Path) -> None:
    roots, state = tmp_path / "before.json", tmp_path / "v2-checkpoint.txt"
    roots.write_text(requests.get(f"{service.url}/v1/trust-root", timeout=30).text)
    verify = ("log", "verify", "--v2", "--checkpoint", str(state), "--output", "json")
    assert service.cli(*verify, "--trust-root", str(roots)).returncode == 0
    before = reader.parse_checkpoint_body(checkpoint(service))

    args = ["server", "rotate-key", "tlog2", "--data-dir", str(service.data_dir)]
    if service.database_url:
        args += ["--database-url", service.database_url]
    done = service.cli(*args)
    assert done.returncode == 0, done.stderr
    service.stop()
    service.start()

    after = requests.get(f"{service.url}/v1/trust-root", timeout=30).text
    v2 = [t for t in json.loads(after)["tlogs"] if "checkpointKeyId" in t]
    assert len(v2) == 2 and "end" in v2[0]["publicKey"]["validFor"]
    assert "end" not in v2[1]["publicKey"]["validFor"]
    envelope = checkpoint(service)
    assert reader.parse_checkpoint_body(envelope) == before  # same tree, signed anew
    _, signed_by = verify_tile_checkpoint(envelope, trust_root.parse(after))
    assert signed_by.log_id.key_id == trust_root.parse(after).tlogs[-1].log_id.key_id
    append(replica_log(service, engine), 5)
    roots.write_text(after)
    done = service.cli(*verify, "--trust-root", str(roots))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["previous_size"] == before[1]
