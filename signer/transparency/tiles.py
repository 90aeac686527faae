"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): a Merkle tree served as static tiles.

A tile at level L holds up to 256 consecutive hashes of that level: at level 0 the leaf hashes,
at level L the Merkle Tree Hash of each *full* tile below, so hash i of tile N at level L is the
perfect subtree of height 8·L over leaves ``[(N·256+i)·256^L, (N·256+i+1)·256^L)`` — the node
``(8·L, N·256+i)`` of `signer.transparency.merkle`'s store. The rightmost tile of each level is
partial (1…255 hashes) until it fills. Paths::

    tile/<L>/<N>[.p/<W>]        tile/entries/<N>[.p/<W>]

with N in 3-digit groups, all but the last prefixed ``x`` (1234067 → ``x001/x234/067``). An
entry bundle holds the entries of level-0 tile N, each prefixed by its big-endian uint16 length.

Reading: `TileNodes` answers `merkle.NodeReader` from fetched tiles, so the root, inclusion and
consistency proofs of `signer.transparency.merkle` work on a tile log unchanged
(`root_from_tiles`, `inclusion_proof_from_tiles`, `consistency_proof_from_tiles`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from signer.transparency import merkle
from signer.transparency.merkle import HASH_SIZE, NodeKey, NodeReader, node_hash

TILE_WIDTH: Final = 256
TILE_HEIGHT: Final = 8  # log2(TILE_WIDTH): Merkle levels per tile level
MAX_LEVEL: Final = 63
MAX_ENTRY_SIZE: Final = 0xFFFF  # the uint16 length prefix of an entry bundle
_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]*))?")


class TileError(ValueError):
    """A tile path, tile or entry bundle is malformed, or a fetched tile has the wrong size."""


@dataclass(frozen=True, order=True)
class Tile:
    """Coordinates of a tile: its level, index within the level, and width (256 = full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL:
            raise TileError(f"tile level must be 0…{MAX_LEVEL}, got {self.level}")
        if self.index < 0:
            raise TileError(f"tile index must not be negative, got {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width must be 1…{TILE_WIDTH}, got {self.width}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return f"tile/{self.level}/{_encode(self.index, self.width)}"

    def entries_path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``: the entries hashed into this level-0 tile."""
        if self.level != 0:
            raise TileError("only level-0 tiles have an entry bundle")
        return f"tile/entries/{_encode(self.index, self.width)}"

    def node_keys(self) -> list[NodeKey]:
        """The `merkle` store's perfect subtrees this tile's hashes are, left to right."""
        first = self.index * TILE_WIDTH
        return [(self.level * TILE_HEIGHT, first + i) for i in range(self.width)]

    @property
    def start(self) -> int:
        """The first leaf index the tile spans."""
        return self.index << (TILE_HEIGHT * (self.level + 1))


def encode_index(index: int) -> str:
    """A tile index as C2SP path elements: ``x001/x234/067``."""
    if index < 0:
        raise TileError(f"tile index must not be negative, got {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _encode(index: int, width: int) -> str:
    return encode_index(index) + ("" if width == TILE_WIDTH else f".p/{width}")


def parse_path(path: str) -> tuple[bool, Tile]:
    """``(is_entry_bundle, tile)`` of a tile path; raises `TileError` on any other spelling."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise TileError(f"{path[:100]!r} is not a C2SP tile path (tile/<L>/<N>[.p/<W>] or "
                        "tile/entries/<N>[.p/<W>], N in x-prefixed 3-digit groups)")
    level, groups, width = match.groups()
    index = int(groups.replace("x", "").replace("/", ""))
    if encode_index(index) != groups:  # e.g. x000/001: a leading zero group
        raise TileError(f"{path!r}: tile index {index} is spelled {encode_index(index)}")
    entries = level == "entries"
    try:
        tile = Tile(0 if entries else int(level), index,
                    TILE_WIDTH if width is None else int(width))
    except TileError as exc:
        raise TileError(f"{path!r}: {exc}") from None
    if width is not None and tile.full:
        raise TileError(f"{path!r}: a partial tile is 1…255 wide; a full one has no .p/")
    return entries, tile


def level_width(size: int, level: int) -> int:
    """How many hashes level ``level`` of a tree of ``size`` leaves has (full 256^L blocks)."""
    return size >> (TILE_HEIGHT * level)


def tiles(size: int) -> Iterator[Tile]:
    """Every tile of a tree of ``size`` leaves, level by level, full tiles then the partial."""
    level = 0
    while level <= MAX_LEVEL and (count := level_width(size, level)):
        yield from (Tile(level, n) for n in range(count // TILE_WIDTH))
        if count % TILE_WIDTH:
            yield Tile(level, count // TILE_WIDTH, count % TILE_WIDTH)
        level += 1


def edge_tiles(size: int) -> list[Tile]:
    """The rightmost tile of each level of a tree of ``size``: what a checkpoint requires."""
    out = []
    level = 0
    while level <= MAX_LEVEL and (count := level_width(size, level)):
        width = count % TILE_WIDTH or TILE_WIDTH
        out.append(Tile(level, (count - 1) // TILE_WIDTH, width))
        level += 1
    return out


def tile_for(size: int, level: int, index: int) -> Tile:
    """Tile ``index`` of ``level`` as a tree of ``size`` serves it (full or partial)."""
    count = level_width(size, level)
    if index * TILE_WIDTH >= count:
        raise TileError(f"a tree of size {size} has no tile {index} at level {level}")
    return Tile(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH))


def tile_data(tile: Tile, reader: NodeReader) -> bytes:
    """The bytes served for ``tile``: its hashes, concatenated, read from a `merkle` store."""
    keys = tile.node_keys()
    nodes = reader.get_nodes(keys)
    missing = [key for key in keys if key not in nodes]
    if missing:
        raise merkle.MerkleError(f"node store lacks {len(missing)} hashes of {tile.path()}")
    return b"".join(nodes[key] for key in keys)


def tile_hashes(tile: Tile, data: bytes) -> list[bytes]:
    """The hashes of a fetched tile; raises `TileError` if its size is not its width's."""
    if len(data) != tile.width * HASH_SIZE:
        raise TileError(f"{tile.path()} is {len(data)} bytes; {tile.width} hashes are "
                        f"{tile.width * HASH_SIZE}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


# -- entry bundles -----------------------------------------------------------------------------
def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry prefixed by its big-endian uint16 length."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise TileError(f"an entry bundle holds 1…{TILE_WIDTH} entries, got {len(entries)}")
    out = []
    for position, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry {position} is {len(entry)} bytes; a bundle entry is at most "
                            f"{MAX_ENTRY_SIZE}")
        out.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; raises `TileError` if it is truncated."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError(f"entry bundle ends inside the length of entry {len(entries)}")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            raise TileError(f"entry bundle ends inside entry {len(entries)}")
        entries.append(data[offset:offset + length])
        offset += length
    return entries


# -- reading a tile log ------------------------------------------------------------------------
TileFetcher = Callable[[Tile], bytes]
"""Fetches a tile's bytes by its coordinates (e.g. ``GET <prefix>/<tile.path()>``)."""


class TileNodes:
    """A `merkle.NodeReader` over the tiles of a tree of ``size``, fetched once each."""

    def __init__(self, fetch: TileFetcher, size: int) -> None:
        self._fetch = fetch
        self.size = size
        self._tiles: dict[Tile, list[bytes]] = {}

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return {key: self._node(*key) for key in keys}

    def _node(self, level: int, index: int) -> bytes:
        """Perfect subtree ``(level, index)``: a run of 2^h hashes of one tile, folded."""
        if (index + 1) << level > self.size:
            raise merkle.MerkleError(f"node ({level}, {index}) is outside a tree of {self.size}")
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # the run's first hash at the tile level
        tile = tile_for(self.size, tile_level, first // TILE_WIDTH)
        hashes = self._tiles.get(tile)
        if hashes is None:
            hashes = self._tiles[tile] = tile_hashes(tile, self._fetch(tile))
        offset = first % TILE_WIDTH
        run = hashes[offset:offset + (1 << height)]
        while len(run) > 1:
            run = [node_hash(run[i], run[i + 1]) for i in range(0, len(run), 2)]
        return run[0]

    @property
    def fetched(self) -> int:
        return len(self._tiles)


def root_from_tiles(size: int, fetch: TileFetcher) -> bytes:
    """The root hash of the first ``size`` leaves, from the log's tiles."""
    return merkle.root_hash(size, TileNodes(fetch, size))


def inclusion_proof_from_tiles(index: int, size: int, fetch: TileFetcher) -> list[bytes]:
    return merkle.inclusion_proof(index, size, TileNodes(fetch, size))


def consistency_proof_from_tiles(size1: int, size2: int, fetch: TileFetcher) -> list[bytes]:
    """Every node the proof needs is inside the larger tree, so its tiles suffice."""
    return merkle.consistency_proof(size1, size2, TileNodes(fetch, size2))
