"""Our own offline verify uses the whole log: it refuses the same tampering as Sigstore's
clients, and names the step that failed."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signer import bundle, trust
from signer.bundle import SignedArtifact
from signer.trust import TrustMaterial
from signer.verification import Policy, StepFailed, Verifier, from_flags
from tests.interop.conftest import Signed
from tests.interop.test_sigstore_python import TAMPERING, _edit
from tests.service_process import SIGNER, clean_env

pytestmark = pytest.mark.integration

EXPECTED_STEP = {
    "flipped signature byte": "step 2 (timestamp)",  # the TSA signed the original bytes
    "tampered canonicalizedBody": "step 6 (transparency log entry)",
    "checkpoint signed by another key": "step 6 (transparency log entry)",
    "wrong inclusion-proof hash": "step 6 (transparency log entry)",
    "leaf without its SCT": "step 5 (certificate transparency (SCT))",
}


def our_verify(signed: Signed, bundle) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIGNER, "artifact", "verify", "--file", str(signed.file), "--bundle", str(bundle),
         "--trust-root", str(signed.root), "--certificate-oidc-issuer", signed.issuer,
         "--certificate-identity", signed.identity],
        capture_output=True, text=True, env=clean_env(), timeout=60)


def test_untampered_bundle_verifies_with_its_log_index(signed: Signed) -> None:
    done = our_verify(signed, signed.bundle)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_names_the_step(signed: Signed, case: str) -> None:
    done = our_verify(signed, _edit(signed, case.replace(" ", "-"), TAMPERING[case]))
    assert done.returncode == 1
    assert EXPECTED_STEP[case] in done.stderr, done.stderr


# --- in process: what the verifier prepares once per trust root still refuses per bundle ---


def _material(signed: Signed) -> tuple[TrustMaterial, SignedArtifact, bytes, Policy]:
    material = trust.read(signed.root)
    artifact = bundle.read(signed.bundle)
    return (material, artifact, bytes.fromhex(signed.digest.removeprefix("sha256:")),
            from_flags(signed.issuer, signed.identity, None, {}))


def _reissued_ca(material: TrustMaterial, *, root_valid: tuple[datetime, datetime] | None = None,
                 path_length: int | None = None, signer_key: ec.EllipticCurvePrivateKey
                 | None = None) -> TrustMaterial:
    """The trust root's intermediate (same name, key and extensions) under a new root."""
    intermediate = material.cas[0].chain[0]
    root_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start, end = root_valid or (now - timedelta(days=30), now + timedelta(days=3650))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another root")])
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                           False)
            .sign(root_key, hashes.SHA256()))
    builder = (x509.CertificateBuilder().subject_name(intermediate.subject).issuer_name(name)
               .public_key(intermediate.public_key()).serial_number(intermediate.serial_number)
               .not_valid_before(intermediate.not_valid_before_utc)
               .not_valid_after(intermediate.not_valid_after_utc))
    for ext in intermediate.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False)
    reissued = builder.sign(signer_key or root_key, hashes.SHA256())
    ca = replace(material.cas[0], chain=(reissued, root))
    return replace(material, cas=(ca,))


def _refusal(material: TrustMaterial, artifact: SignedArtifact, digest: bytes,
             policy: Policy) -> StepFailed:
    with pytest.raises(StepFailed) as failed:
        Verifier(material).verify(artifact, digest, policy)
    return failed.value


def test_one_verifier_checks_every_bundle_anew(signed: Signed) -> None:
    material, artifact, digest, policy = _material(signed)
    verifier = Verifier.for_trust(material)
    assert Verifier.for_trust(material) is verifier
    assert verifier.verify(artifact, digest, policy) == verifier.verify(artifact, digest, policy)
    flipped = replace(artifact, signature=artifact.signature[:-1]
                      + bytes([artifact.signature[-1] ^ 1]))
    with pytest.raises(StepFailed) as failed:
        verifier.verify(flipped, digest, policy)
    assert failed.value.step == 2
    assert verifier.verify(artifact, digest, policy).log_index >= 0


def test_intermediate_under_another_root_verifies_while_that_root_is_valid(signed: Signed
                                                                            ) -> None:
    material, artifact, digest, policy = _material(signed)
    at = Verifier(_reissued_ca(material)).verify(artifact, digest, policy).signed_at
    issued = material.cas[0].chain[0].not_valid_before_utc
    assert issued < at - timedelta(seconds=1)
    # Valid when the intermediate was issued, expired when the artifact was signed: the
    # intermediate is checked against this root once, the root's validity for each bundle.
    expired = _refusal(_reissued_ca(material, root_valid=(issued - timedelta(days=1),
                                                          at - timedelta(seconds=1))),
                       artifact, digest, policy)
    assert expired.step == 3 and "another root" in expired.reason, expired.reason
    later = _refusal(_reissued_ca(material, root_valid=(at + timedelta(seconds=1),
                                                        at + timedelta(days=1))),
                     artifact, digest, policy)
    assert later.step == 3


def test_root_that_may_not_issue_the_path_is_refused(signed: Signed) -> None:
    material, artifact, digest, policy = _material(signed)
    assert _refusal(_reissued_ca(material, path_length=0), artifact, digest, policy).step == 3


def test_intermediate_not_signed_by_its_root_is_refused(signed: Signed) -> None:
    material, artifact, digest, policy = _material(signed)
    forged = _reissued_ca(material, signer_key=ec.generate_private_key(ec.SECP256R1()))
    assert _refusal(forged, artifact, digest, policy).step == 3


def test_timestamp_authority_under_another_root_is_refused(signed: Signed) -> None:
    material, artifact, digest, policy = _material(signed)
    other = _reissued_ca(material).cas[0].chain[1]
    tsa = replace(material.tsas[0], chain=(material.tsas[0].chain[0], other))
    failed = _refusal(replace(material, tsas=(tsa,)), artifact, digest, policy)
    assert failed.step == 2
