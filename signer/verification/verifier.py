"""The verification procedure, as numbered steps; each failure names its step.

Trust material comes in through the constructor (a pinned ``trusted_root.json``), the policy
as an argument; no I/O happens here. Revocation is known only to the service: callers pass
what it said, or ``None`` offline, and the report says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from rfc3161_client import VerificationError as TimestampVerificationError
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from signer.bundle import SignedArtifact
from signer.errors import UsageError, VerificationFailed
from signer.provenance import Provenance
from signer.trust import Authority, TrustMaterial
from signer.verification.policy import Policy, PolicyError, certificate_identity
from signer.verification.transparency import LogCheckError, check_entry, check_sct, log_keys

STEPS = {
    1: "artifact digest",
    2: "timestamp",
    3: "certificate chain",
    4: "certificate profile",
    5: "certificate transparency (SCT)",
    6: "transparency log entry",
    7: "signature",
    8: "identity and provenance",
    9: "revocation",
}


class StepFailed(VerificationFailed):
    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step} ({STEPS[step]}) failed: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class Revocation:
    reason: str
    revoked_by: str
    revoked_at: datetime
    log_index: int | None = None


@dataclass(frozen=True)
class VerifiedSignature:
    identity: str
    provenance: Provenance
    signed_at: datetime
    log_index: int


def _ee_policy() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    # Web PKI defaults, except that our leaves carry codeSigning instead of clientAuth; the
    # codeSigning EKU is checked in step 4. Same policies as sigstore-python.
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    return ca, ee


class Verifier:
    def __init__(self, trust: TrustMaterial) -> None:
        if not trust.cas or not trust.tsas:
            raise UsageError("The trust root names no certificate authority or no timestamp "
                             "authority.", "Export a complete trust root from the service.")
        self.trust = trust
        self._ca_policy, self._ee_policy = _ee_policy()
        self._tlogs = log_keys(trust.tlogs)
        self._ctlogs = log_keys(trust.ctlogs)
        if not self._tlogs or not self._ctlogs:
            raise UsageError("The trust root names no transparency log or no CT log.",
                             "Export a complete trust root with 'signer trust-root export'.")

    def verify(self, artifact: SignedArtifact, digest: bytes, policy: Policy
               ) -> VerifiedSignature:
        cert = artifact.certificate
        # (1) The bundle signs the artifact we were asked about.
        if artifact.digest != digest:
            raise StepFailed(1, f"the bundle signs sha256:{artifact.digest.hex()}, not "
                                f"sha256:{digest.hex()}")
        # (2) A trusted TSA timestamped this very signature: that is the signing time.
        signed_at = self._verify_timestamp(artifact)
        # (3) The leaf chains to a pinned root, and was valid at the signing time.
        issuer = self._verify_chain(cert, signed_at)
        # (4) The leaf is a signing certificate of our profile.
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = x509.ExtendedKeyUsage([])
        if not ku.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise StepFailed(4, "the certificate is not for code signing "
                                "(needs digitalSignature and EKU codeSigning)")
        # (5) A trusted CT log promised to publish this certificate (its embedded SCT).
        try:
            check_sct(cert, issuer, self._ctlogs)
        except LogCheckError as exc:
            raise StepFailed(5, str(exc)) from exc
        # (6) The signature is in the transparency log: body, proof, checkpoint, promise.
        try:
            log_index = check_entry(artifact.tlog_entries, self._tlogs, cert, digest,
                                    artifact.signature)
        except LogCheckError as exc:
            raise StepFailed(6, str(exc)) from exc
        # (7) The signature over the digest verifies with the leaf's key.
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise StepFailed(7, "the certificate's key is not an ECDSA key")
        try:
            key.verify(artifact.signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise StepFailed(7, "the signature does not verify with the certificate's key "
                                "over this digest") from exc
        # (8) Who signed, from which build: issuer, identity, every provenance flag.
        try:
            identity = certificate_identity(cert)
            provenance = Provenance.from_certificate(cert)
            policy.verify(identity, provenance)
        except (PolicyError, UsageError) as exc:
            raise StepFailed(8, str(exc)) from exc
        return VerifiedSignature(identity, provenance, signed_at, log_index)

    def _verify_timestamp(self, artifact: SignedArtifact) -> datetime:
        if not artifact.timestamps:
            raise StepFailed(2, "the bundle has no RFC 3161 timestamp")
        outside = []
        for der in artifact.timestamps:
            try:
                response = decode_timestamp_response(der)
            except ValueError as exc:
                raise StepFailed(2, "the timestamp is not a valid RFC 3161 response") from exc
            for tsa in self.trust.tsas:
                if _verify_with(tsa, response, artifact.signature):
                    gen_time = response.tst_info.gen_time
                    # A rotated TSA key counts only for times inside its validFor (as in
                    # sigstore-python: start included, end excluded).
                    if tsa.start <= gen_time and (tsa.end is None or gen_time < tsa.end):
                        return gen_time
                    outside.append(f"the timestamp says {gen_time.isoformat()}, outside its "
                                   f"TSA key's validity {_window(tsa)}")
        if outside:
            raise StepFailed(2, "; ".join(outside))
        raise StepFailed(2, "no trusted timestamp authority signed a timestamp over this "
                            "signature")

    def _verify_chain(self, cert: x509.Certificate, at: datetime) -> x509.Certificate:
        """Returns the leaf's issuer on the verified path."""
        failures = []
        for ca in self.trust.cas:
            verifier = (
                PolicyBuilder().store(Store([ca.root])).time(at)
                .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
                .build_client_verifier()
            )
            try:
                issuer = verifier.verify(cert, list(ca.chain[:-1])).chain[1]
            except VerificationError as exc:
                failures.append(str(exc))
                continue
            # A rotated CA counts only for leaves it issued, and signatures made, while it was
            # the issuing CA (its validFor, end included as sigstore-js does).
            issued = cert.not_valid_before_utc
            if issued < ca.start or (ca.end is not None and issued > ca.end):
                failures.append(f"the leaf was issued at {issued.isoformat()} by a CA trusted "
                                f"only {_window(ca)}")
                continue
            if ca.end is not None and at > ca.end:
                failures.append(f"the signature was made at {at.isoformat()} with a leaf of a "
                                f"CA trusted only {_window(ca)}")
                continue
            return issuer
        raise StepFailed(3, "the certificate does not chain to a trusted root at the signing "
                            f"time {at.isoformat()}: {'; '.join(failures)}")


def _window(authority: Authority) -> str:
    if authority.end is None:
        return f"from {authority.start.isoformat()}"
    return f"from {authority.start.isoformat()} to {authority.end.isoformat()} (retired)"


def _verify_with(tsa: Authority, response: object, message: bytes) -> bool:
    builder = VerifierBuilder().tsa_certificate(tsa.chain[0]).add_root_certificate(tsa.root)
    for intermediate in tsa.chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    try:
        return bool(builder.build().verify_message(response, message))  # type: ignore[arg-type]
    except TimestampVerificationError:
        return False


@dataclass(frozen=True)
class EntryResult:
    entry_id: str
    verified: VerifiedSignature | None = None
    error: str | None = None
    revocation: Revocation | None = None

    @property
    def ok(self) -> bool:
        return self.verified is not None and self.error is None


@dataclass(frozen=True)
class Report:
    results: tuple[EntryResult, ...]
    revocation_checked: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return any(r.ok for r in self.results)

    def explain(self) -> str:
        lines = [f"{r.entry_id}: {'ok' if r.ok else r.error}" for r in self.results]
        if not self.revocation_checked:
            lines.append("revocation was not checked (offline verification)")
        return "\n".join(lines)


def verify_entries(
    verifier: Verifier,
    entries: Sequence[tuple[str, SignedArtifact, Revocation | None]],
    digest: bytes,
    policy: Policy,
    revocation_checked: bool,
) -> Report:
    """Pass when one entry passes; otherwise say, per entry, which step failed and why."""
    results = []
    for entry_id, artifact, revocation in entries:
        try:
            verified = verifier.verify(artifact, digest, policy)
        except StepFailed as exc:
            results.append(EntryResult(entry_id, error=exc.detail))
            continue
        if revocation is not None:
            # (9) A verified signature that a maintainer revoked does not count.
            when = revocation.revoked_at.isoformat()
            results.append(EntryResult(
                entry_id, verified, revocation=revocation,
                error=f"step 9 (revocation) failed: revoked by {revocation.revoked_by} at "
                      f"{when}: {revocation.reason}" + (
                          f" (transparency log entry {revocation.log_index})"
                          if revocation.log_index is not None else "")))
            continue
        results.append(EntryResult(entry_id, verified))
    return Report(tuple(results), revocation_checked)
