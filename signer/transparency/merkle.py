"""RFC 6962 / RFC 9162 Merkle trees kept as stored perfect subtrees.

Storage model: the log stores the hash of every *perfect* subtree, keyed by ``(level, index)``.
Level 0 holds the leaf hashes; node ``(level, i)`` covers leaves ``[i·2^level, (i+1)·2^level)``.
A perfect subtree never changes once complete, so the store is append-only, and any other hash
the RFCs ask for (the root of a tree whose size is not a power of two, the MTH of the right part
of a split) is the right-fold of the maximal perfect subtrees covering that range.

Each reading operation has a ``*_keys`` twin listing the nodes it needs, and reads them through
`NodeReader.get_nodes` in one batch, so the database is asked once per root or proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

HASH_SIZE = 32
# RFC 9162 §2.1.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""

Node = tuple[int, int, bytes]
"""``(level, index, hash)``: one row to store."""


class MerkleError(ValueError):
    """A proof does not verify, or the node store cannot answer a request."""


class NodeReader(Protocol):
    """Batched read access to stored perfect-subtree hashes."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Return the stored hashes of ``keys``; absent keys are simply missing."""
        ...


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """RFC 9162's k for n ≥ 2: the largest power of two strictly smaller than n."""
    return 1 << ((n - 1).bit_length() - 1)


def _cover(start: int, end: int) -> list[NodeKey]:
    """The maximal perfect subtrees covering leaves ``[start, end)``, left to right."""
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            # A subtree must start on a multiple of its own width.
            level = min(level, (start & -start).bit_length() - 1)
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _perfect(start: int, width: int) -> list[NodeKey]:
    """The single subtree covering ``[start, start + width)``, width a power of two."""
    level = width.bit_length() - 1
    return [(level, start >> level)]


def _fold(keys: Sequence[NodeKey], nodes: Mapping[NodeKey, bytes]) -> bytes:
    """MTH of a range from its covering subtrees (RFC 9162 splits always leave the
    biggest subtree leftmost, so folding from the right reproduces the recursion)."""
    digest = nodes[keys[-1]]
    for position in range(len(keys) - 2, -1, -1):
        digest = node_hash(nodes[keys[position]], digest)
    return digest


def _read(reader: NodeReader, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
    if not keys:
        return {}
    nodes = reader.get_nodes(keys)
    missing = [key for key in keys if key not in nodes]
    if missing:
        raise MerkleError(f"node store lacks perfect subtrees (level, index) {missing}")
    return nodes


def _flatten(plan: Sequence[Sequence[NodeKey]]) -> list[NodeKey]:
    # A plan's groups cover disjoint leaf ranges, so no key repeats.
    return [key for group in plan for key in group]


def _check_size(size: int) -> None:
    if size < 0:
        raise MerkleError(f"tree size must not be negative, got {size}")


# --- building ---------------------------------------------------------------------------------


def append_nodes(size: int, new_leaf_hashes: Sequence[bytes], reader: NodeReader) -> list[Node]:
    """Perfect-subtree nodes to insert when appending ``new_leaf_hashes`` to a tree of ``size``.

    Returns the new leaves at level 0 and every interior node the batch completes. The only
    old nodes needed are left siblings on the old tree's right border, read in one batch (or
    not at all when no old subtree gains a parent, e.g. on an empty tree).
    """
    _check_size(size)
    new_size = size + len(new_leaf_hashes)
    for offset, digest in enumerate(new_leaf_hashes):
        if len(digest) != HASH_SIZE:
            raise MerkleError(f"leaf hash {offset} is {len(digest)} bytes, not {HASH_SIZE}")
    # An old border subtree (level, i) is needed iff its parent completes in the new tree.
    needed = [
        (level, index)
        for level, index in _cover(0, size)
        if ((index >> 1) + 1) << (level + 1) <= new_size
    ]
    old = _read(reader, needed)

    current = {size + offset: digest for offset, digest in enumerate(new_leaf_hashes)}
    out: list[Node] = [(0, index, digest) for index, digest in current.items()]
    level = 0
    while True:
        # Parents j at level+1 that are complete now but were not before.
        first, last = size >> (level + 1), (new_size >> (level + 1)) - 1
        if first > last:
            return out
        parents: dict[int, bytes] = {}
        for j in range(first, last + 1):
            left = current[2 * j] if 2 * j in current else old[(level, 2 * j)]
            parents[j] = node_hash(left, current[2 * j + 1])
        out.extend((level + 1, j, digest) for j, digest in parents.items())
        current = parents
        level += 1


# --- reading: roots and proofs ----------------------------------------------------------------


def root_keys(size: int) -> list[NodeKey]:
    """Nodes `root_hash` reads."""
    _check_size(size)
    return _cover(0, size)


def root_hash(size: int, reader: NodeReader) -> bytes:
    """RFC 9162 §2.1.1 MTH of the first ``size`` leaves."""
    keys = root_keys(size)
    if not keys:
        return EMPTY_ROOT
    return _fold(keys, _read(reader, keys))


def _inclusion_plan(index: int, size: int) -> list[list[NodeKey]]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) as groups of subtrees, one group per proof hash.

    Below the level where the paths to ``index`` and ``size - 1`` part, each step's sibling
    is one perfect subtree, except the last, which may be the partial right border; above it,
    the path runs along the right border and takes the left sibling wherever there is one.
    """
    _check_size(size)
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of size {size}")
    inner = (index ^ (size - 1)).bit_length()
    plan: list[list[NodeKey]] = []
    for level in range(inner):
        sibling = (index >> level) ^ 1
        start = sibling << level
        if start + (1 << level) <= size:
            plan.append([(level, sibling)])
        else:
            plan.append(_cover(start, size))
    for level in range(inner, index.bit_length()):
        if (index >> level) & 1:
            plan.append([(level, (index >> level) ^ 1)])
    return plan


def _consistency_plan(size1: int, size2: int) -> list[list[NodeKey]]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as groups of subtrees."""
    _check_size(size1)
    if size1 > size2:
        raise MerkleError(f"no consistency proof from size {size1} to smaller size {size2}")
    if size1 in (0, size2):
        return []
    plan: list[list[NodeKey]] = []
    lo, hi, starts_at_zero = 0, size2, True  # SUBPROOF's b flag
    while size1 != hi:
        k = _split(hi - lo)
        if size1 - lo <= k:
            plan.append(_cover(lo + k, hi))
            hi = lo + k
        else:
            plan.append(_perfect(lo, k))
            lo += k
            starts_at_zero = False
    if not starts_at_zero:
        plan.append(_cover(lo, hi))
    plan.reverse()
    return plan


def inclusion_proof_keys(index: int, size: int) -> list[NodeKey]:
    """Nodes `inclusion_proof` reads."""
    return _flatten(_inclusion_plan(index, size))


def consistency_proof_keys(size1: int, size2: int) -> list[NodeKey]:
    """Nodes `consistency_proof` reads."""
    return _flatten(_consistency_plan(size1, size2))


def _proof(plan: list[list[NodeKey]], reader: NodeReader) -> list[bytes]:
    nodes = _read(reader, _flatten(plan))
    return [_fold(group, nodes) for group in plan]


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size`` leaves, leaf to root."""
    return _proof(_inclusion_plan(index, size), reader)


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """Proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2``."""
    return _proof(_consistency_plan(size1, size2), reader)


# --- verifying --------------------------------------------------------------------------------


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for position, digest in enumerate(hashes):
        if len(digest) != HASH_SIZE:
            raise MerkleError(f"{what} {position} is {len(digest)} bytes, not {HASH_SIZE}")


def _unwind(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until LSB(fn) is set or fn is 0 (RFC 9162 step shared by both proofs)."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf`` (a leaf hash) is at ``index`` under ``root``."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes("leaf hash", [leaf])
    _check_hashes("root hash", [root])
    _check_hashes("inclusion proof hash", proof)
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    if len(proof) != expected:
        raise MerkleError(
            f"inclusion proof has {len(proof)} hashes; leaf {index} of a tree of size {size} "
            f"needs {expected}"
        )
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            fn, sn = _unwind(fn, sn)
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0 or digest != root:
        raise MerkleError(
            f"inclusion proof for leaf {index} leads to root {digest.hex()}, "
            f"not the expected {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: check that the tree (size1, root1) is a prefix of (size2, root2)."""
    _check_size(size1)
    if size1 > size2:
        raise MerkleError(f"tree shrank from size {size1} to {size2}")
    _check_hashes("root hash", [root1, root2])
    _check_hashes("consistency proof hash", proof)
    if size1 in (0, size2):
        if proof:
            raise MerkleError(
                f"consistency proof from size {size1} to {size2} must be empty, "
                f"got {len(proof)} hashes"
            )
        if size1 == size2 and root1 != root2:
            raise MerkleError(
                f"two different roots for size {size1}: {root1.hex()} and {root2.hex()} "
                "(the log forked)"
            )
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise MerkleError(f"root of the empty tree must be {EMPTY_ROOT.hex()}")
        return
    expected = len(_consistency_plan(size1, size2))
    if len(proof) != expected:
        raise MerkleError(
            f"consistency proof from size {size1} to {size2} has {len(proof)} hashes, "
            f"needs {expected}"
        )
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is one perfect subtree, whose hash the proof leaves out.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise MerkleError("consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            fn, sn = _unwind(fn, sn)
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("consistency proof is shorter than the trees need")
    if first != root1:
        raise MerkleError(
            f"consistency proof leads to old root {first.hex()}, not {root1.hex()} (size {size1})"
        )
    if second != root2:
        raise MerkleError(
            f"consistency proof leads to new root {second.hex()}, not {root2.hex()} (size {size2})"
        )


# --- in-memory store --------------------------------------------------------------------------


class MemoryNodes:
    """An in-memory node store: a `NodeReader` that also keeps what `append_nodes` returns.

    For tests, and for anything small enough to live in memory. ``reads`` counts batched
    reads, so a test can show that one proof costs one read.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self.size = 0
        self.reads = 0

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.reads += 1
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def put(self, nodes: Sequence[Node]) -> None:
        """Store nodes; a stored perfect subtree never changes, so a different hash is refused."""
        for level, index, digest in nodes:
            stored = self._nodes.setdefault((level, index), digest)
            if stored != digest:
                raise MerkleError(f"node ({level}, {index}) is already stored with another hash")

    def append(self, leaf_hashes: Sequence[bytes]) -> list[Node]:
        """Append a batch of leaf hashes; returns the nodes stored."""
        nodes = append_nodes(self.size, leaf_hashes, self)
        self.put(nodes)
        self.size += len(leaf_hashes)
        return nodes

    def root(self) -> bytes:
        return root_hash(self.size, self)
