"""Unmodified sigstore-python verifies our bundles offline against our trust config, and
refuses each kind of tampering."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from signer.service.keys import sign_certificate
from tests.interop.conftest import Signed
from tests.service_process import BIN
from tests.softhsm import service_key

pytestmark = pytest.mark.integration
SIGSTORE = str(BIN / "sigstore")


def sigstore_verify(signed: Signed, bundle: Path, target: str | None = None, *,
                    identity: str | None = None, issuer: str | None = None,
                    config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIGSTORE, "--trust-config", str(config or signed.config), "verify", "identity",
         target or str(signed.file), "--bundle", str(bundle), "--cert-identity",
         identity or signed.identity, "--cert-oidc-issuer", issuer or signed.issuer,
         "--offline"],
        capture_output=True, text=True, cwd=signed.workdir, timeout=120)


def test_file_and_digest_verify(signed: Signed) -> None:
    done = sigstore_verify(signed, signed.bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    by_digest = sigstore_verify(signed, signed.bundle, signed.digest)
    assert by_digest.returncode == 0, by_digest.stdout + by_digest.stderr


def _edit(signed: Signed, name: str, change: Callable[[dict[str, Any], Signed], None]) -> Path:
    data = json.loads(signed.bundle.read_text())
    change(data, signed)
    path = signed.workdir / f"{name}.sigstore.json"
    path.write_text(json.dumps(data))
    return path


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    return data["verificationMaterial"]["tlogEntries"][0]


def _resign_checkpoint(data: dict[str, Any], _signed: Signed) -> None:
    proof = _entry(data)["inclusionProof"]
    body, _, _ = proof["checkpoint"]["envelope"].partition("\n\n")
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign((body + "\n").encode(), ec.ECDSA(hashes.SHA256()))
    name = body.split("\n", 1)[0].split(" ")[0]
    proof["checkpoint"]["envelope"] = (body + "\n\n\u2014 " + name + " " + base64.b64encode(
        b"\0\0\0\0" + sig).decode() + "\n")


def _strip_sct(data: dict[str, Any], signed: Signed) -> None:
    """The same leaf, re-issued by the real CA key without the SCT: only the SCT is missing."""
    cert = x509.load_der_x509_certificate(base64.b64decode(
        data["verificationMaterial"]["certificate"]["rawBytes"]))
    key = service_key(signed.ca_key.parent, "intermediate")
    builder = x509.CertificateBuilder().subject_name(cert.subject).issuer_name(
        cert.issuer).public_key(cert.public_key()).serial_number(cert.serial_number
        ).not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc)
    for ext in cert.extensions:
        if ext.oid.dotted_string != "1.3.6.1.4.1.11129.2.4.2":
            builder = builder.add_extension(ext.value, ext.critical)
    data["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
        sign_certificate(builder, key).public_bytes(Encoding.DER)).decode()


TAMPERING: dict[str, Callable[[dict[str, Any], Signed], None]] = {
    "flipped signature byte": lambda d, _: d["messageSignature"].update(
        signature=_flip(d["messageSignature"]["signature"])),
    "tampered canonicalizedBody": lambda d, _: _entry(d).update(
        canonicalizedBody=base64.b64encode(base64.b64decode(
            _entry(d)["canonicalizedBody"]).replace(b"sha256", b"sha257")).decode()),
    "checkpoint signed by another key": _resign_checkpoint,
    "wrong inclusion-proof hash": lambda d, _: _entry(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip(_entry(d)["inclusionProof"]["hashes"][0]))
    if _entry(d)["inclusionProof"]["hashes"] else _entry(d)["inclusionProof"].update(
        rootHash=_flip(_entry(d)["inclusionProof"]["rootHash"])),
    "leaf without its SCT": _strip_sct,
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_refused(signed: Signed, case: str) -> None:
    bundle = _edit(signed, case.replace(" ", "-"), TAMPERING[case])
    done = sigstore_verify(signed, bundle)
    assert done.returncode != 0, case


def test_other_digest_identity_and_issuer_are_refused(signed: Signed) -> None:
    other = signed.workdir / "other.txt"
    other.write_text("another artifact")
    assert sigstore_verify(signed, signed.bundle, str(other)).returncode != 0
    assert sigstore_verify(signed, signed.bundle, identity="repo:acme/app:ref:refs/heads/x"
                           ).returncode != 0
    assert sigstore_verify(signed, signed.bundle,
                           issuer="https://token.actions.githubusercontent.com").returncode != 0


def test_sct_from_another_ct_key_is_refused(signed: Signed) -> None:
    """The trust config's CT log key replaced: the leaf's SCT no longer verifies."""
    config = json.loads(signed.config.read_text())
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    config["trustedRoot"]["ctlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(other).decode()
    path = signed.workdir / "other_ct.json"
    path.write_text(json.dumps(config))
    assert sigstore_verify(signed, signed.bundle, config=path).returncode != 0
