"""The service's keys: the key files (mode, passphrase, refusals), and a key that is not a
file signing everything the service signs — certificates (assembled around its signature),
precertificates and SCTs, timestamps, checkpoints, inclusion promises — each verified by
cryptography, openssl or sigstore-python."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import CTKeyring, Keyring
from sigstore_models.common import v1 as common_v1

from signer.errors import UsageError
from signer.service import ca
from signer.service.keys import KEY_FILE_MODE, FileKey, KeyFiles, PublicKey, sign_certificate
from signer.service.tsa import TimestampAuthority
from signer.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from signer.transparency.rekor import signed_entry_timestamp, verify_signed_entry_timestamp
from signer.transparency.sct import (
    issuer_key_hash,
    log_id,
    precertificate_tbs,
    sign_precert_sct,
    verify_embedded_sct,
)
from tests.fakes.key_signer import RemoteKey

OPENSSL = "/usr/bin/openssl"
IDENTITY = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"


def _verify(public: PublicKey, signature: bytes, data: bytes) -> None:
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


# --- key files --------------------------------------------------------------------------------


def test_a_generated_key_is_written_private_and_loads_back(tmp_path: Path) -> None:
    store = KeyFiles(tmp_path, None)
    made = store.generate("tlog")
    path = tmp_path / "tlog.key"
    assert path.stat().st_mode & 0o777 == KEY_FILE_MODE
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    loaded = store.load("tlog")
    assert loaded.public_key == made.public_key
    _verify(made.public_key, loaded.sign(b"checkpoint"), b"checkpoint")


def test_an_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    made = KeyFiles(tmp_path, b"correct horse").generate("root")
    assert (tmp_path / "root.key").read_text().startswith(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert KeyFiles(tmp_path, b"correct horse").load("root").public_key == made.public_key
    with pytest.raises(UsageError, match="is encrypted") as missing:
        KeyFiles(tmp_path, None).load("root")
    assert "SIGNER_CA_PASSPHRASE" in (missing.value.fix or "")
    with pytest.raises(UsageError, match="wrong passphrase or damaged file") as wrong:
        KeyFiles(tmp_path, b"wrong").load("root")
    assert "SIGNER_CA_PASSPHRASE" in (wrong.value.fix or "")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    KeyFiles(tmp_path, None).generate("tsa")
    (tmp_path / "tsa.key").chmod(0o644)
    with pytest.raises(UsageError, match="mode 644: others can read it") as caught:
        KeyFiles(tmp_path, None).load("tsa")
    assert caught.value.fix == f"Run 'chmod 600 {tmp_path / 'tsa.key'}'."


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    first = KeyFiles(tmp_path, None).generate("intermediate")
    with pytest.raises(UsageError, match="exists already"):
        KeyFiles(tmp_path, None).generate("intermediate")
    assert KeyFiles(tmp_path, None).load("intermediate").public_key == first.public_key


def test_a_key_file_without_an_ecdsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tlog.key"
    path.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(UsageError, match="does not hold an ECDSA key"):
        KeyFiles(tmp_path, None).load("tlog")


# --- a key that is not a file -----------------------------------------------------------------


def _csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    return ca.parse_csr(pem)


def _pem(directory: Path, name: str, cert: x509.Certificate) -> Path:
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True,
                          check=False)


def _ct_keyring(public: PublicKey) -> CTKeyring:
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return CTKeyring(Keyring([common_v1.PublicKey(
        raw_bytes=base64.b64encode(spki).decode(),  # type: ignore[arg-type]
        key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256)]))


def test_a_hierarchy_signed_by_keys_outside_the_process_verifies(tmp_path: Path) -> None:
    root_key, ca_key, tsa_key, ct_key = RemoteKey(), RemoteKey(), RemoteKey(), RemoteKey()
    root = ca.create_root(root_key)
    intermediate = ca.create_intermediate(ca_key.public_key, root_key, root)
    tsa_cert = ca.create_tsa_certificate(tsa_key.public_key, root_key, root)
    assert root_key.signatures == 3
    authority = ca.CertificateAuthority(ca_key, intermediate, root)  # its start-up checks pass
    precerts: list[x509.Certificate] = []
    key_hash = issuer_key_hash(intermediate)

    def sct_source(precert: ca.Precertificate) -> bytes:
        certificate = x509.load_der_x509_certificate(precert.der)
        precerts.append(certificate)
        return sign_precert_sct(ct_key, 1_700_000_000_000, key_hash,
                                precertificate_tbs(certificate))

    leaf = authority.issue(_csr(), IDENTITY, [], sct_source=sct_source)
    plain = authority.issue(_csr(), IDENTITY, [])
    assert ca_key.signatures == 3 and ct_key.signatures == 1

    # cryptography: every signature, the precertificate's too, and the embedded SCT.
    root.verify_directly_issued_by(root)
    for cert in (intermediate, tsa_cert):
        cert.verify_directly_issued_by(root)
    for cert in (precerts[0], leaf, plain):
        cert.verify_directly_issued_by(intermediate)
    assert leaf.tbs_precertificate_bytes == precertificate_tbs(precerts[0])
    verify_embedded_sct(leaf, intermediate, {log_id(ct_key.public_key): ct_key.public_key})  # type: ignore[dict-item]
    # sigstore-python: the same SCT, found in the chain it is given.
    verify_sct(leaf, [intermediate, root], _ct_keyring(ct_key.public_key))
    # openssl: each certificate parses, and the chain verifies.
    files = {name: _pem(tmp_path, name, cert) for name, cert in (
        ("root", root), ("intermediate", intermediate), ("tsa", tsa_cert),
        ("precert", precerts[0]), ("leaf", leaf), ("plain", plain))}
    for path in files.values():
        parsed = _openssl("x509", "-noout", "-in", path)
        assert parsed.returncode == 0, parsed.stderr
    for name in ("leaf", "plain"):
        verified = _openssl("verify", "-CAfile", files["root"], "-untrusted",
                            files["intermediate"], files[name])
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.strip() == f"{files[name]}: OK"
    verified = _openssl("verify", "-CAfile", files["root"], files["tsa"])
    assert verified.returncode == 0, verified.stderr

    # The TSA: a token openssl verifies against the root.
    tsa = TimestampAuthority(tsa_key, [tsa_cert, root])
    data, response = tmp_path / "data", tmp_path / "r.tsr"
    data.write_bytes(b"a signature")
    response.write_bytes(tsa.timestamp(b"a signature"))
    token = _openssl("ts", "-verify", "-data", data, "-in", response, "-CAfile", files["root"],
                     "-untrusted", files["tsa"])
    assert token.returncode == 0, token.stderr
    assert "Verification: OK" in token.stdout


def test_a_log_key_outside_the_process_signs_checkpoints_and_promises() -> None:
    log_key = RemoteKey()
    public = log_key.public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    checkpoint = Checkpoint("signer.example - 1", 3, bytes(range(32)))
    envelope = sign_checkpoint(checkpoint, "signer.example", log_key)
    assert verify_checkpoint(envelope, "signer.example", public) == checkpoint
    fields = {"body": b"{}", "integrated_time": 1_700_000_000, "log_id": log_id(public),
              "log_index": 2}
    promise = signed_entry_timestamp(log_key, **fields)  # type: ignore[arg-type]
    verify_signed_entry_timestamp(public, promise, **fields)  # type: ignore[arg-type]


def test_an_ed25519_key_signs_certificates_too(tmp_path: Path) -> None:
    root_key = RemoteKey(ed25519.Ed25519PrivateKey.generate())
    root = ca.create_root(root_key)
    root.verify_directly_issued_by(root)
    assert root.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ED25519
    path = _pem(tmp_path, "root", root)
    verified = _openssl("verify", "-CAfile", path, path)
    assert verified.returncode == 0, verified.stderr


def test_a_signature_by_another_key_is_caught_before_it_becomes_a_certificate() -> None:
    class Confused(RemoteKey):
        """Names one key and signs with another (a misconfigured token, say)."""

        def __init__(self) -> None:
            super().__init__()
            self._named = ec.generate_private_key(ec.SECP256R1()).public_key()

        @property
        def public_key(self) -> PublicKey:
            return self._named

    with pytest.raises(ValueError, match="does not verify with its public key"):
        ca.create_root(Confused())


def test_a_file_key_and_another_key_make_the_same_certificate() -> None:
    """The assembling path yields what cryptography itself would: same TBS, same layout."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "same")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(now)
               .not_valid_after(now.replace(year=now.year + 1)))
    direct, assembled = sign_certificate(builder, FileKey(key)), sign_certificate(
        builder, RemoteKey(key))
    assert direct.tbs_certificate_bytes == assembled.tbs_certificate_bytes
    assert direct.signature_algorithm_oid == assembled.signature_algorithm_oid
    assert len(assembled.public_bytes(serialization.Encoding.DER)) - len(assembled.signature) \
        == len(direct.public_bytes(serialization.Encoding.DER)) - len(direct.signature)


def test_the_key_store_does_not_show_its_passphrase(tmp_path: Path) -> None:
    assert "correct horse" not in repr(KeyFiles(tmp_path, b"correct horse"))
