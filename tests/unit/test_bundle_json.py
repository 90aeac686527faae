"""The service writes a bundle's JSON in two parts (before and after its log entry exists):
the result is byte for byte what the whole bundle's to_json() writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer import bundle
from signer.sigstore_json import TransparencyLogEntry


def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(
        x509.Name([])).public_key(key.public_key()).serial_number(1).not_valid_before(
        now).not_valid_after(now + timedelta(minutes=5)).sign(key, hashes.SHA256())


def _entry(promise: bytes | None, proof: list[bytes]) -> TransparencyLogEntry:
    return bundle.tlog_entry(
        kind="hashedrekord", version="0.0.1", log_id=bytes(32), index=5, integrated_time=7,
        body=b"{}", promise=promise, root_hash=bytes(range(32)), tree_size=6,
        proof=proof, checkpoint="origin\n6\nroot\n")


@pytest.mark.parametrize("promise", [b"promise", None])
@pytest.mark.parametrize("proof", [[bytes(32), bytes(range(32))], []])
def test_a_skeleton_with_its_entry_is_to_json(promise: bytes | None, proof: list[bytes]
                                              ) -> None:
    cert, entry = _certificate(), _entry(promise, proof)
    whole = bundle.build(cert, bytes(32), b"signature", b"timestamp", [entry]).to_json()
    skeleton = bundle.Skeleton.of(bundle.build(cert, bytes(32), b"signature", b"timestamp"))
    assert skeleton.with_entry(entry) == whole
    assert bundle.parse(whole, "test").tlog_entries[0].log_index == 5


def test_a_skeleton_has_no_entry() -> None:
    logged = bundle.build(_certificate(), bytes(32), b"signature", b"timestamp",
                          [_entry(None, [])])
    with pytest.raises(ValueError, match="no tlog entry"):
        bundle.Skeleton.of(logged)
