"""signer.transparency.tiles against the C2SP tlog-tiles specification and merkle.py.

The reader is checked for every tree size 1…1,000 (full and partial tiles, levels 0–1) against
the node store and against RFC 6962's MTH written out here from its definition.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from signer.transparency import merkle, tiles
from signer.transparency.merkle import leaf_hash
from signer.transparency.tiles import Tile, TileError

ENTRIES = [f"entry {i}".encode() for i in range(1000)]
LOG = merkle.MemoryNodes()
LOG.append([leaf_hash(e) for e in ENTRIES])


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1, recursively, from the entries themselves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _served(size: int) -> dict[str, bytes]:
    """What a log of ``size`` serves: every tile by its path, and the entry bundles."""
    served = {tile.path(): tiles.tile_data(tile, LOG) for tile in tiles.tiles(size)}
    for tile in tiles.tiles(size):
        if tile.level == 0:
            served[tile.entries_path()] = tiles.entry_bundle(
                ENTRIES[tile.start:tile.start + tile.width])
    return served


def _fetcher(served: dict[str, bytes]) -> tiles.TileFetcher:
    return lambda tile: served[tile.path()]


@pytest.mark.parametrize(("index", "path"), [
    (0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067"),
    (10**9, "x001/x000/x000/000"),
])
def test_index_encoding_is_the_specifications(index: int, path: str) -> None:
    assert tiles.encode_index(index) == path
    assert tiles.parse_path(f"tile/0/{path}") == (False, Tile(0, index))


def test_paths() -> None:
    assert Tile(1, 1234067).path() == "tile/1/x001/x234/067"
    assert Tile(0, 3, 17).path() == "tile/0/003.p/17"
    assert Tile(0, 3, 17).entries_path() == "tile/entries/003.p/17"
    assert tiles.parse_path("tile/entries/x001/002.p/255") == (True, Tile(0, 1002, 255))
    assert tiles.parse_path("tile/63/000") == (False, Tile(63, 0))


@pytest.mark.parametrize("path", [
    "tile/0/1", "tile/00/000", "tile/64/000", "tile/0/x001", "tile/0/001/002", "tile/0/x000/001",
    "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/007", "tile/entries/000.p/", "tile/-1/000",
    "tile/0/000/", "checkpoint",
])
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        tiles.parse_path(path)


def test_the_specifications_example_sizes() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    shape = [(t.level, t.width) for t in tiles.tiles(70_000)]
    assert shape == [(0, 256)] * 273 + [(0, 112), (1, 256), (1, 17), (2, 1)]
    assert tiles.edge_tiles(70_000) == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1."
    assert list(tiles.tiles(256)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles.tiles(0)) == [] == tiles.edge_tiles(0)


def test_a_tile_holds_the_subtree_hashes_of_its_level() -> None:
    level0 = tiles.tile_hashes(Tile(0, 1), tiles.tile_data(Tile(0, 1), LOG))
    assert level0 == [leaf_hash(e) for e in ENTRIES[256:512]]
    level1 = tiles.tile_hashes(Tile(1, 0, 3), tiles.tile_data(Tile(1, 0, 3), LOG))
    assert level1 == [_mth(ENTRIES[i * 256:(i + 1) * 256]) for i in range(3)]
    with pytest.raises(TileError, match="is 31 bytes; 1 hashes are 32"):
        tiles.tile_hashes(Tile(0, 0, 1), b"\0" * 31)


def test_entry_bundles() -> None:
    bundle = tiles.entry_bundle([b"", b"a", b"\xff" * 300])
    assert bundle == b"\0\0" + b"\0\x01a" + b"\x01\x2c" + b"\xff" * 300
    assert tiles.parse_entry_bundle(bundle) == [b"", b"a", b"\xff" * 300]
    with pytest.raises(TileError, match="ends inside entry 2"):
        tiles.parse_entry_bundle(bundle[:-1])
    with pytest.raises(TileError, match="ends inside the length of entry 0"):
        tiles.parse_entry_bundle(b"\0")
    with pytest.raises(TileError, match="at most 65535"):
        tiles.entry_bundle([b"\0" * 65536])
    with pytest.raises(TileError, match="1…256 entries"):
        tiles.entry_bundle([b""] * 257)


def test_a_tile_reader_agrees_with_merkle_for_every_size_up_to_1000() -> None:
    rng = random.Random(1000)
    for size in range(1, 1001):
        served = _served(size)
        fetch = _fetcher(served)
        root = tiles.root_from_tiles(size, fetch)
        assert root == merkle.root_hash(size, LOG) == _mth(ENTRIES[:size]), size
        # Each level-0 tile's hashes are its entry bundle's entries, hashed.
        last = tiles.edge_tiles(size)[0]
        bundle = tiles.parse_entry_bundle(served[last.entries_path()])
        assert [leaf_hash(e) for e in bundle] == tiles.tile_hashes(last, served[last.path()])
        for index in {size - 1, rng.randrange(size)}:
            proof = tiles.inclusion_proof_from_tiles(index, size, fetch)
            assert proof == merkle.inclusion_proof(index, size, LOG)
            merkle.verify_inclusion(leaf_hash(ENTRIES[index]), index, size, proof, root)
        old = rng.randrange(1, size + 1)
        proof = tiles.consistency_proof_from_tiles(old, size, fetch)
        assert proof == merkle.consistency_proof(old, size, LOG)
        merkle.verify_consistency(old, size, merkle.root_hash(old, LOG), root, proof)


def test_a_reader_fetches_only_the_tiles_it_needs_and_each_once() -> None:
    fetched: list[str] = []
    served = _served(1000)

    def fetch(tile: Tile) -> bytes:
        fetched.append(tile.path())
        return served[tile.path()]

    reader = tiles.TileNodes(fetch, 1000)
    merkle.root_hash(1000, reader)
    merkle.inclusion_proof(5, 1000, reader)
    assert sorted(fetched) == sorted(set(fetched))
    assert set(fetched) <= {t.path() for t in tiles.tiles(1000)}
    assert "tile/1/000.p/3" in fetched and "tile/0/003.p/232" in fetched


def test_a_reader_refuses_short_tiles_and_nodes_beyond_its_size() -> None:
    served = _served(300)
    served["tile/0/001.p/44"] = served["tile/0/001.p/44"][:-1]
    with pytest.raises(TileError, match=r"tile/0/001\.p/44 is 1407 bytes"):
        tiles.root_from_tiles(300, _fetcher(served))
    with pytest.raises(merkle.MerkleError, match="outside a tree of 300"):
        tiles.TileNodes(_fetcher(served), 300).get_nodes([(9, 0)])
    with pytest.raises(TileError, match="no tile 2 at level 0"):
        tiles.tile_for(300, 0, 2)
