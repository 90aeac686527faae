"""An independent C2SP tlog-tiles reader, written from https://c2sp.org/tlog-tiles and RFC 6962
§2.1 for the tests: it shares no code with signer.transparency (no tiles.py, no merkle.py).

It fetches what a client fetches — the checkpoint, then the tiles and entry bundles its size
requires — checks each tile against the entries and the tiles below it, and recomputes the
root hash the checkpoint signs, by the RFC's recursive definition over the leaf hashes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable

WIDTH = 256
Fetch = Callable[[str], bytes]  # a path below the log's prefix → the bytes served


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf hashes: split at the largest power of two below n."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def index_path(n: int) -> str:
    """The spec's <N>: zero-padded 3-digit elements, all but the last prefixed with x."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_path(level: int | str, n: int, width: int) -> str:
    return f"tile/{level}/{index_path(n)}" + ("" if width == WIDTH else f".p/{width}")


def parse_bundle(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        (length,) = struct.unpack(">H", data[at:at + 2])
        out.append(data[at + 2:at + 2 + length])
        at += 2 + length
    assert at == len(data), "entry bundle ends inside an entry"
    return out


def parse_checkpoint_body(note: str) -> tuple[str, int, bytes]:
    body = note[:note.index("\n\n") + 1]
    origin, size, root = body.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def read_log(fetch: Fetch, size: int) -> tuple[list[bytes], bytes]:
    """Every entry of a tree of ``size`` and its root hash, from its tiles alone.

    Level 0: each bundle's entries hash to its tile's hashes. Level L > 0: hash i of a tile is
    the MTH of the full tile i below it (its 256 hashes taken as leaves of a height-8 tree).
    The partial tile of level L has floor(size / 256^L) mod 256 hashes.
    """
    entries: list[bytes] = []
    level_hashes: list[list[bytes]] = []
    level = 0
    while size >> (8 * level):
        count = size >> (8 * level)
        hashes: list[bytes] = []
        for n in range((count + WIDTH - 1) // WIDTH):
            width = min(WIDTH, count - n * WIDTH)
            data = fetch(tile_path(level, n, width))
            assert len(data) == 32 * width, (level, n, width, len(data))
            got = [data[i:i + 32] for i in range(0, len(data), 32)]
            if level == 0:
                bundle = parse_bundle(fetch(tile_path("entries", n, width)))
                assert [leaf(e) for e in bundle] == got, f"bundle {n} does not hash to tile {n}"
                entries += bundle
            else:
                below = level_hashes[level - 1]
                for i, digest in enumerate(got):
                    full = below[(n * WIDTH + i) * WIDTH:(n * WIDTH + i + 1) * WIDTH]
                    assert len(full) == WIDTH and mth(full) == digest, (level, n, i)
            hashes += got
        level_hashes.append(hashes)
        level += 1
    return entries, root_from_levels(size, level_hashes)


def root_from_levels(size: int, levels: list[list[bytes]]) -> bytes:
    """The root from the tiles: the tree's leaves in blocks, biggest first, each block a
    perfect subtree read from the highest level that holds it whole, folded from the right."""
    if size == 0:
        return hashlib.sha256(b"").digest()
    parts, start = [], 0
    for height in range(size.bit_length() - 1, -1, -1):
        if size & (1 << height):
            level, rest = divmod(height, 8)
            first = start >> (8 * level)
            run = levels[level][first:first + (1 << rest)]
            parts.append(mth(run))
            start += 1 << height
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = node(part, root)
    return root
