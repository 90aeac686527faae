"""RFC 6962 / RFC 9162 Merkle trees: published vectors, a peer verifier, and tampering."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import pytest
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore.errors import VerificationError

from signer.transparency.merkle import (
    EMPTY_ROOT,
    MemoryNodes,
    MerkleError,
    NodeKey,
    append_nodes,
    consistency_proof,
    consistency_proof_keys,
    inclusion_proof,
    inclusion_proof_keys,
    leaf_hash,
    node_hash,
    root_hash,
    root_keys,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# transparency-dev/merkle testonly/constants.go and proof/verify_test.go (the 8-leaf
# reference tree from certificate-transparency).
REFERENCE_LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
REFERENCE_NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
REFERENCE_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size, proof): verify_test.go lists 1-based leaves; these are 0-based indices.
REFERENCE_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
REFERENCE_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

BIG = 1000


def body(i: int) -> bytes:
    return f"entry {i}".encode()


@pytest.fixture(scope="module")
def reference_tree() -> MemoryNodes:
    tree = MemoryNodes()
    for leaf in REFERENCE_LEAVES:
        tree.append([leaf_hash(leaf)])
    return tree


@pytest.fixture(scope="module")
def big_tree() -> MemoryNodes:
    tree = MemoryNodes()
    tree.append([leaf_hash(body(i)) for i in range(BIG)])
    return tree


@pytest.fixture(scope="module")
def big_roots(big_tree: MemoryNodes) -> list[bytes]:
    return [root_hash(size, big_tree) for size in range(BIG + 1)]


class Rfc9162:
    """The RFC's recursive definitions, straight from the text, as an independent oracle."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves

    @staticmethod
    def k(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    @functools.cache  # noqa: B019 - one oracle per test module, kept on purpose
    def mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 0:
            return EMPTY_ROOT
        if hi - lo == 1:
            return leaf_hash(self.leaves[lo])
        k = self.k(hi - lo)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = self.k(hi - lo)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = self.k(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


@pytest.fixture(scope="module")
def oracle() -> Rfc9162:
    return Rfc9162([body(i) for i in range(BIG)])


def sigstore_verify_inclusion(
    data: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    """sigstore-python's own inclusion check; it reads only these attributes of the entry."""
    proof_model = SimpleNamespace(log_index=index, tree_size=size, hashes=proof, root_hash=root)
    entry = SimpleNamespace(
        _inner=SimpleNamespace(canonicalized_body=data, inclusion_proof=proof_model)
    )
    verify_merkle_inclusion(entry)  # type: ignore[arg-type]


def flip(proof: list[bytes], position: int) -> list[bytes]:
    tampered = list(proof)
    tampered[position] = bytes([tampered[position][0] ^ 0x10]) + tampered[position][1:]
    return tampered


# --- published vectors -------------------------------------------------------------------------


def test_reference_roots_for_every_size(reference_tree: MemoryNodes) -> None:
    for size, expected in enumerate(REFERENCE_ROOTS):
        assert root_hash(size, reference_tree).hex() == expected


def test_stored_nodes_are_the_reference_perfect_subtrees(reference_tree: MemoryNodes) -> None:
    for level, hashes in enumerate(REFERENCE_NODES):
        got = reference_tree.get_nodes([(level, i) for i in range(len(hashes))])
        assert [got[(level, i)].hex() for i in range(len(hashes))] == hashes


@pytest.mark.parametrize(("index", "size", "proof"), REFERENCE_INCLUSION)
def test_reference_inclusion_proofs(
    reference_tree: MemoryNodes, index: int, size: int, proof: list[str]
) -> None:
    got = inclusion_proof(index, size, reference_tree)
    assert [p.hex() for p in got] == proof
    root = h(REFERENCE_ROOTS[size])
    verify_inclusion(leaf_hash(REFERENCE_LEAVES[index]), index, size, got, root)
    sigstore_verify_inclusion(REFERENCE_LEAVES[index], index, size, got, root)


@pytest.mark.parametrize(("size1", "size2", "proof"), REFERENCE_CONSISTENCY)
def test_reference_consistency_proofs(
    reference_tree: MemoryNodes, size1: int, size2: int, proof: list[str]
) -> None:
    got = consistency_proof(size1, size2, reference_tree)
    assert [p.hex() for p in got] == proof
    verify_consistency(size1, size2, h(REFERENCE_ROOTS[size1]), h(REFERENCE_ROOTS[size2]), got)


def test_reference_inclusion_corruptions_fail() -> None:
    """The probes of transparency-dev's verifierCheck, for the 6-of-8 vector."""
    index, size, hexes = REFERENCE_INCLUSION[2]
    proof = [h(x) for x in hexes]
    root, leaf = h(REFERENCE_ROOTS[size]), leaf_hash(REFERENCE_LEAVES[index])
    some = h("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, leaf_hash(b"WrongLeaf"), proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, some, leaf, proof),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [root, *proof]),
        (index, size, root, leaf, proof[:-1]),
        (index, size, root, leaf, [proof[0], some, *proof[1:]]),
        *((index, size, root, leaf, flip(proof, i)) for i in range(len(proof))),
    ]
    for probe in probes:
        with pytest.raises(MerkleError):
            verify_inclusion(probe[3], probe[0], probe[1], probe[4], probe[2])


def test_reference_consistency_corruptions_fail() -> None:
    size1, size2, hexes = REFERENCE_CONSISTENCY[2]
    proof = [h(x) for x in hexes]
    root1, root2 = h(REFERENCE_ROOTS[size1]), h(REFERENCE_ROOTS[size2])
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, EMPTY_ROOT, root2, proof),
        (size1, size2, root1, EMPTY_ROOT, proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
        *((size1, size2, root1, root2, flip(proof, i)) for i in range(len(proof))),
    ]
    for probe in probes:
        with pytest.raises(MerkleError):
            verify_consistency(*probe)


# --- every index of every size up to 1000 -----------------------------------------------------


def test_every_inclusion_proof_up_to_1000_verifies_with_sigstore_and_ours(
    big_tree: MemoryNodes, big_roots: list[bytes], oracle: Rfc9162
) -> None:
    bodies = [body(i) for i in range(BIG)]
    leaves = [leaf_hash(data) for data in bodies]
    checked = 0
    for size in range(1, BIG + 1):
        root = big_roots[size]
        assert root == oracle.mth(0, size)
        for index in range(size):
            proof = inclusion_proof(index, size, big_tree)
            sigstore_verify_inclusion(bodies[index], index, size, proof, root)
            verify_inclusion(leaves[index], index, size, proof, root)
            checked += 1
    assert checked == BIG * (BIG + 1) // 2


def test_inclusion_proofs_equal_the_rfc_recursion(big_tree: MemoryNodes, oracle: Rfc9162) -> None:
    for size in range(1, BIG + 1, 37):
        for index in range(0, size, 13):
            assert inclusion_proof(index, size, big_tree) == oracle.path(index, 0, size)


def test_tampered_inclusion_proofs_fail_both_verifiers(
    big_tree: MemoryNodes, big_roots: list[bytes]
) -> None:
    rng = random.Random(6962)
    for _ in range(300):
        size = rng.randint(2, BIG)
        index = rng.randrange(size)
        proof = inclusion_proof(index, size, big_tree)
        bad = flip(proof, rng.randrange(len(proof)))
        with pytest.raises(MerkleError):
            verify_inclusion(leaf_hash(body(index)), index, size, bad, big_roots[size])
        with pytest.raises(VerificationError):
            sigstore_verify_inclusion(body(index), index, size, bad, big_roots[size])
        # A genuine proof for another leaf does not prove this one.
        with pytest.raises(MerkleError):
            verify_inclusion(leaf_hash(body(index + 1)), index, size, proof, big_roots[size])


def test_consistency_proofs_up_to_1000(
    big_tree: MemoryNodes, big_roots: list[bytes], oracle: Rfc9162
) -> None:
    pairs = 0
    for size2 in range(1, BIG + 1, 3):
        for size1 in [*range(1, size2 + 1, 11), size2]:
            proof = consistency_proof(size1, size2, big_tree)
            root1, root2 = big_roots[size1], big_roots[size2]
            verify_consistency(size1, size2, root1, root2, proof)
            if size1 < size2:
                assert proof == oracle.subproof(size1, 0, size2, True)
                position = (size1 * 31 + size2) % len(proof)
                with pytest.raises(MerkleError):
                    verify_consistency(size1, size2, root1, root2, flip(proof, position))
                with pytest.raises(MerkleError):
                    verify_consistency(size1, size2, big_roots[size1 - 1], root2, proof)
                with pytest.raises(MerkleError):
                    verify_consistency(size1, size2 - 1, root1, big_roots[size2 - 1], proof)
            pairs += 1
    assert pairs > 15_000


# --- building ----------------------------------------------------------------------------------


def test_uneven_batches_store_the_same_tree_as_one_by_one() -> None:
    hashes = [leaf_hash(body(i)) for i in range(700)]
    one_by_one, batched = MemoryNodes(), MemoryNodes()
    roots, singly_stored, batch_stored = [], [], []
    for digest in hashes:
        singly_stored += one_by_one.append([digest])
        roots.append(one_by_one.root())
    rng = random.Random(9162)
    while batched.size < len(hashes):
        count = rng.choice([1, 2, 3, 5, 8, 13, 64, 100, 129])
        batch_stored += batched.append(hashes[batched.size : batched.size + count])
        assert batched.root() == roots[batched.size - 1]
    assert sorted(batch_stored) == sorted(singly_stored)
    # Perfect subtrees of n leaves: sum of n >> level = 2n - popcount(n); each stored once.
    assert len(set(batch_stored)) == len(batch_stored) == 2 * 700 - (700).bit_count()


def test_each_operation_reads_the_store_once(big_tree: MemoryNodes) -> None:
    before = big_tree.reads
    root_hash(999, big_tree)
    inclusion_proof(500, 999, big_tree)
    consistency_proof(123, 999, big_tree)
    assert big_tree.reads == before + 3

    tree = MemoryNodes()
    tree.append([leaf_hash(b"a")] * 5)
    reads = tree.reads
    tree.append([leaf_hash(b"b")] * 11)
    assert tree.reads == reads + 1
    assert tree.size == 16


class RecordingReader:
    def __init__(self, inner: MemoryNodes) -> None:
        self.inner = inner
        self.asked: list[list[NodeKey]] = []

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.asked.append(list(keys))
        return self.inner.get_nodes(keys)


def test_key_helpers_name_exactly_what_is_read(big_tree: MemoryNodes) -> None:
    reader = RecordingReader(big_tree)
    root_hash(777, reader)
    inclusion_proof(300, 777, reader)
    consistency_proof(100, 777, reader)
    assert reader.asked == [
        root_keys(777),
        inclusion_proof_keys(300, 777),
        consistency_proof_keys(100, 777),
    ]
    assert root_keys(777) == [(9, 0), (8, 2), (3, 96), (0, 776)]


def test_append_reads_only_the_left_siblings_it_needs() -> None:
    tree = MemoryNodes()
    tree.append([leaf_hash(body(i)) for i in range(6)])  # border subtrees (2, 0), (1, 2)
    reader = RecordingReader(tree)
    nodes = append_nodes(6, [leaf_hash(body(6)), leaf_hash(body(7))], reader)
    assert reader.asked == [[(2, 0), (1, 2)]]
    assert [(level, index) for level, index, _ in nodes] == [(0, 6), (0, 7), (1, 3), (2, 1), (3, 0)]
    reader.asked.clear()
    assert append_nodes(0, [leaf_hash(b"x")], reader) == [(0, 0, leaf_hash(b"x"))]
    assert reader.asked == []


def test_missing_nodes_and_bad_requests_are_errors() -> None:
    tree = MemoryNodes()
    tree.append([leaf_hash(body(i)) for i in range(4)])
    with pytest.raises(MerkleError, match="lacks"):
        root_hash(5, tree)
    with pytest.raises(MerkleError, match="outside"):
        inclusion_proof(4, 4, tree)
    with pytest.raises(MerkleError, match="smaller"):
        consistency_proof(5, 4, tree)
    with pytest.raises(MerkleError, match="32"):
        tree.append([b"short"])
    with pytest.raises(MerkleError, match="another hash"):
        tree.put([(0, 0, leaf_hash(b"rewritten"))])
    assert root_hash(0, tree) == EMPTY_ROOT


def test_verify_consistency_edge_cases() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, b, [])
    verify_consistency(3, 3, a, a, [])
    with pytest.raises(MerkleError, match="forked"):
        verify_consistency(3, 3, a, b, [])
    with pytest.raises(MerkleError, match="must be empty"):
        verify_consistency(3, 3, a, a, [b])
    with pytest.raises(MerkleError, match="must be empty"):
        verify_consistency(0, 1, EMPTY_ROOT, a, [b])
    with pytest.raises(MerkleError, match="empty tree"):
        verify_consistency(0, 1, a, b, [])
    with pytest.raises(MerkleError, match="shrank"):
        verify_consistency(2, 1, a, b, [])
    with pytest.raises(MerkleError, match="needs 1"):
        verify_consistency(1, 2, a, b, [])
    with pytest.raises(MerkleError, match="5 bytes, not 32"):
        verify_consistency(1, 2, a, b, [b"short"])


def test_verify_inclusion_messages() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(MerkleError, match="outside"):
        verify_inclusion(leaf, 1, 1, [], leaf)
    with pytest.raises(MerkleError, match="needs 0"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)
    with pytest.raises(MerkleError, match="expected"):
        verify_inclusion(leaf, 0, 1, [], EMPTY_ROOT)
    with pytest.raises(MerkleError, match="bytes"):
        verify_inclusion(b"", 0, 1, [], leaf)
