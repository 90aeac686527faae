"""The trust decisions other modules ask verification for: which log key signed a checkpoint
and whether it could then (the monitor, the log API), and the upload-time leaf check (the
service). On the static assets of ``tests/assets``, no service."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from signer import bundle, trust
from signer.sigstore_json import TimeRange
from signer.transparency.checkpoint import CheckpointError
from signer.trust import log_instance
from signer.verification import uploads
from signer.verification.checkpoints import (
    RetiredLogKey,
    SignedTree,
    inclusion_checkpoint,
    signing_log_key,
    verify_log_checkpoint,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
META = json.loads((ASSETS / "verification.meta.json").read_text())
TRUST = trust.read(ASSETS / "trusted_root-good.json")
GOOD = bundle.read(ASSETS / "bundle-good.sigstore.json")
ENVELOPE = GOOD.tlog_entries[0].inclusion_proof.checkpoint.envelope  # type: ignore[union-attr]
FOREIGN = bundle.read(ASSETS / "bundle-checkpoint-signed-by-another-key.sigstore.json")
LOG = TRUST.tlogs[0]
SECOND = timedelta(seconds=1)
pytestmark = pytest.mark.usefixtures("no_network")


def retired_at(end_offset: timedelta) -> trust.TrustMaterial:
    """The asset log key retired ``end_offset`` after its start."""
    start = LOG.public_key.valid_for.start  # type: ignore[union-attr]
    key = dataclasses.replace(LOG.public_key, valid_for=TimeRange(start=start,
                                                                  end=start + end_offset))
    return dataclasses.replace(TRUST, tlogs=(dataclasses.replace(LOG, public_key=key),))


def test_a_checkpoint_names_the_pinned_key_that_signed_it() -> None:
    checkpoint, signed_by = verify_log_checkpoint(ENVELOPE, TRUST)
    assert signed_by == LOG
    assert checkpoint.size == GOOD.tlog_entries[0].inclusion_proof.tree_size


def test_a_checkpoint_of_another_key_is_refused() -> None:
    envelope = FOREIGN.tlog_entries[0].inclusion_proof.checkpoint.envelope  # type: ignore[union-attr]
    with pytest.raises(CheckpointError, match="no signature by"):
        verify_log_checkpoint(envelope, TRUST)


def test_a_retired_key_is_refused_after_its_end_and_not_at_it() -> None:
    material = retired_at(timedelta(hours=1))
    end = material.tlogs[0].public_key.valid_for.end  # type: ignore[union-attr]
    assert end is not None
    assert verify_log_checkpoint(ENVELOPE, material, end)[1] == material.tlogs[0]
    with pytest.raises(RetiredLogKey, match="retired at") as refused:
        verify_log_checkpoint(ENVELOPE, material, end + SECOND)
    assert refused.value.log == material.tlogs[0]
    # Without a time (a saved checkpoint), the old key still counts: rotation keeps the tree.
    assert verify_log_checkpoint(ENVELOPE, material)[1] == material.tlogs[0]


def test_the_log_api_proves_a_retired_keys_entry_in_its_batch_checkpoint() -> None:
    new_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    start = LOG.public_key.valid_for.start  # type: ignore[union-attr]
    new = log_instance(LOG.base_url, new_key, start + timedelta(days=1))
    tlogs = (retired_at(timedelta(days=1)).tlogs[0], new)
    head = SignedTree(99, b"\x00" * 32, "the head, signed by the new key")
    proof = GOOD.tlog_entries[0].inclusion_proof
    batch = SignedTree(int(proof.tree_size), proof.root_hash, ENVELOPE)
    assert signing_log_key(ENVELOPE, tlogs) == LOG.log_id.key_id
    assert inclusion_checkpoint(tlogs, new.log_id.key_id, head, lambda: batch) == (
        LOG.log_id.key_id, batch)
    # Before any rotation the head is the checkpoint, and no batch is read.
    def unread() -> SignedTree:
        raise AssertionError("the batch checkpoint was read without a rotation")
    assert inclusion_checkpoint((LOG,), LOG.log_id.key_id, head, unread) == (
        LOG.log_id.key_id, head)


# -- the upload-time leaf check --------------------------------------------------------------
LEAF = GOOD.certificate
CA = TRUST.cas[0].chain[0]


def check(**overrides: object) -> None:
    args: dict[str, object] = {"cert": LEAF, "ca_certificate": CA,
                               "identity": META["identity"], "namespace": META["namespace"],
                               "now": LEAF.not_valid_before_utc}
    args.update(overrides)
    uploads.check_own_leaf(**args)  # type: ignore[arg-type]


def test_our_own_leaf_is_accepted_until_its_last_second() -> None:
    check()
    check(now=LEAF.not_valid_after_utc)


def test_an_expired_leaf_is_refused() -> None:
    with pytest.raises(uploads.LeafExpired):
        check(now=LEAF.not_valid_after_utc + SECOND)
    with pytest.raises(uploads.LeafExpired):
        check(now=LEAF.not_valid_before_utc - SECOND)


def test_a_leaf_of_another_ca_is_refused() -> None:
    foreign = bundle.read(ASSETS / "bundle-leaf-from-foreign-root.sigstore.json").certificate
    with pytest.raises(uploads.NotIssuedByUs):
        check(cert=foreign)


@pytest.mark.parametrize("override", [{"identity": "repo:acme/other:ref:refs/heads/main"},
                                      {"namespace": "other"}])
def test_a_leaf_of_another_caller_is_refused(override: dict[str, str]) -> None:
    with pytest.raises(uploads.NotTheCallers):
        check(**override)
