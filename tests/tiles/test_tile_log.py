"""The Rekor v2 tile log, in process on SQLite, read by an independent C2SP reader
(`tests.tiles.c2sp_reader`, written from the specification) at every size 1…1,000."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from signer.errors import NotFound, UsageError
from signer.service import database
from signer.service.keys import KeyFiles
from signer.service.log import LogItem, Sequenced
from signer.service.log.tiles import TileLog
from signer.service.store import Transaction
from signer.transparency import note, tiles
from tests.tiles import c2sp_reader as reader

SWEEP = 1000
BASE_URL = "https://signer.example.com"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TileLog]:
    engine = database.create_engine(f"sqlite:///{tmp_path / 'signer.db'}")
    database.migrate(engine)
    signer = KeyFiles(tmp_path, None).generate("tlog2")
    tile_log = TileLog("tlog2", engine, signer, BASE_URL)
    tile_log.create()
    try:
        yield tile_log
    finally:
        engine.dispose()


def fetcher(log: TileLog) -> reader.Fetch:
    """What GET <prefix>/<path> answers (the route parses the path the same way)."""
    def fetch(path: str) -> bytes:
        entries, tile = tiles.parse_path(path)
        return log.entry_bundle(tile) if entries else log.tile(tile)
    return fetch


def item(i: int) -> LogItem[Sequenced]:
    def keep(_: Transaction, entry: Sequenced) -> Sequenced:
        return entry
    body = b'{"apiVersion":"0.0.2","kind":"hashedrekord","n":%d}' % i
    return LogItem("hashedrekord", "0.0.2", body, keep)


def test_every_size_to_1000_reads_back_through_the_tiles(log: TileLog) -> None:
    verifier = note.NoteVerifier("signer.example.com", log.signer.public_key)
    fetch = fetcher(log)
    bodies: list[bytes] = []
    for size in range(1, SWEEP + 1):
        entry = log.append(item(size - 1))
        bodies.append(entry.body)
        assert (entry.index, entry.tree_size, entry.signed_entry_timestamp) == (
            size - 1, size, None)
        checkpoint = note.verify_checkpoint(entry.checkpoint, verifier,
                                            origin="signer.example.com")
        assert checkpoint.size == size
        served = log.head().checkpoint
        origin, signed_size, root = reader.parse_checkpoint_body(served)
        assert (origin, signed_size) == ("signer.example.com", size)
        entries, tile_root = reader.read_log(fetch, size)
        assert entries == bodies
        assert tile_root == root == reader.mth([reader.leaf(b) for b in bodies])
        assert entry.root_hash == root
        # The proof the log hands out verifies by the RFC's own recursion, too.
        assert inclusion_root(entry.index, size, reader.leaf(entry.body), entry.proof) == root


def inclusion_root(index: int, size: int, leaf_hash: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, written out for the test."""
    fn, sn, digest = index, size - 1, leaf_hash
    for sibling in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            digest = reader.node(sibling, digest)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            digest = reader.node(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0, "proof too short"
    return digest


def test_concurrent_appends_batch_and_stay_one_tree(log: TileLog) -> None:
    results: list[Sequenced] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for i in range(start, start + 50):
            entry = log.append(item(i))
            with lock:
                results.append(entry)

    threads = [threading.Thread(target=worker, args=(n * 50,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.index for r in results) == list(range(400))
    entries, root = reader.read_log(fetcher(log), 400)
    assert sorted(entries) == sorted(r.body for r in results)
    assert [entries[r.index] for r in results] == [r.body for r in results]
    assert root == reader.parse_checkpoint_body(log.head().checkpoint)[2]


def test_tiles_the_tree_does_not_have_yet_are_not_found(log: TileLog) -> None:
    for i in range(3):
        log.append(item(i))
    assert len(log.tile(tiles.Tile(0, 0, 3))) == 3 * 32
    assert len(log.tile(tiles.Tile(0, 0, 2))) == 2 * 32  # a smaller, older partial tile
    for missing in (tiles.Tile(0, 0, 4), tiles.Tile(0, 0), tiles.Tile(0, 1, 1),
                    tiles.Tile(1, 0, 1)):
        with pytest.raises(NotFound):
            log.tile(missing)
    with pytest.raises(NotFound):
        log.entry_bundle(tiles.Tile(0, 0, 4))


def test_an_entry_too_big_for_a_bundle_is_refused_before_it_is_logged(log: TileLog) -> None:
    big = LogItem("dsse", "0.0.2", b"x" * (tiles.MAX_ENTRY_SIZE + 1), item(0).write)
    with pytest.raises(UsageError, match="at most 65535 bytes"):
        log.append(big)
    assert log.head().size == 0


def test_the_log_id_is_the_checkpoint_key_id(log: TileLog) -> None:
    signature = note.parse_note(log.head().checkpoint).signatures[0]
    assert signature.name == "signer.example.com"
    assert log.log_id == note.log_id("signer.example.com", log.signer.public_key)
    assert signature.key_id == log.log_id[:4]


def test_resign_head_after_a_new_key_keeps_the_tree(log: TileLog, tmp_path: Path) -> None:
    for i in range(5):
        log.append(item(i))
    before = reader.parse_checkpoint_body(log.head().checkpoint)
    assert not log.resign_head()
    rotated = TileLog("tlog2", log.engine, KeyFiles(tmp_path, None).generate("tlog2-new"),
                      BASE_URL)
    assert rotated.resign_head()
    head = rotated.head().checkpoint
    assert reader.parse_checkpoint_body(head) == before
    note.verify_checkpoint(head, note.NoteVerifier("signer.example.com",
                                                   rotated.signer.public_key))


def test_the_specification_example_of_70000_entries(log: TileLog) -> None:
    """c2sp.org/tlog-tiles: "a tree of size 70,000 will be represented by 273 full level 0
    tiles, one partial level 0 tile of width 112, one full level 1 tile, one partial level 1
    tile of width 17, and one partial level 2 tile of width 1"."""
    size = 70_000
    with ThreadPoolExecutor(max_workers=256) as pool:  # many waiting: big batches
        list(pool.map(lambda i: log.append(item(i)), range(size)))
    assert log.head().size == size
    fetched: list[str] = []

    def fetch(path: str) -> bytes:
        fetched.append(path)
        return fetcher(log)(path)

    entries, root = reader.read_log(fetch, size)
    assert root == reader.parse_checkpoint_body(log.head().checkpoint)[2]
    assert sorted(entries) == sorted(item(i).body for i in range(size))
    hashes = [p for p in fetched if not p.startswith("tile/entries/")]
    assert len([p for p in hashes if p.startswith("tile/0/") and ".p/" not in p]) == 273
    assert [p for p in hashes if ".p/" in p or not p.startswith("tile/0/")] == [
        "tile/0/273.p/112", "tile/1/000", "tile/1/001.p/17", "tile/2/000.p/1"]
