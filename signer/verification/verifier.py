"""The verification procedure, as numbered steps; each failure names its step.

Trust material comes in through the constructor (a pinned ``trusted_root.json``), the policy
as an argument; no I/O happens here. Revocation is known only to the service: callers pass
what it said, or ``None`` offline, and the report says which.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from rfc3161_client import PKIStatus, TimeStampResponse, decode_timestamp_response
from rfc3161_client._rust import verify as _rfc3161_rust

from signer.bundle import SignedArtifact
from signer.errors import UsageError, VerificationFailed
from signer.provenance import Provenance
from signer.transparency.sct import issuer_key_hash
from signer.trust import Authority, TrustMaterial
from signer.verification.policy import Policy, PolicyError, certificate_identity
from signer.verification.transparency import (
    LogCheckError,
    check_entry,
    check_sct,
    log_keys,
)
from signer.verification.windows import Window, within

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
REVOCATION_STEP = 9


class StepFailed(VerificationFailed):
    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step} ({STEPS[step]}) failed: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class _Progress:
    """The step a verification is in, so that an unexpected error is that step's failure."""

    step: int = 1


# An unexpected error's message is the library's: kept short in a report line.
_MAX_UNEXPECTED_CHARS = 200


def _unexpected(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:_MAX_UNEXPECTED_CHARS]
    return f"the bundle could not be checked ({type(exc).__name__}: {text or 'no detail'})"


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
    """Verifies bundles against one trust root.

    Whatever is the same for every bundle is prepared here, once: the TSA checks (trusted
    certificates, the TSA leaf's profile), each CA's intermediate checked against its root,
    the CT and log keys. Nothing about a bundle is remembered: every call checks every step.
    A verifier holds no mutable state, so one instance may serve many threads.
    """

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
        self._cas = tuple(_CaPath.prepare(ca, self._ca_policy) for ca in trust.cas)
        self._tsas = tuple(_TimestampCheck(tsa) for tsa in trust.tsas)
        # RFC 6962 issuer_key_hash of every certificate that may issue a leaf.
        self._key_hashes = {c: issuer_key_hash(c) for ca in trust.cas for c in ca.chain}

    @classmethod
    def for_trust(cls, trust: TrustMaterial) -> Verifier:
        """The verifier of this very trust material, made once per process (a few kept)."""
        with _VERIFIERS_LOCK:
            found = _VERIFIERS.get(id(trust))
            if found is not None and found.trust is trust:
                _VERIFIERS.move_to_end(id(trust))
                return found
        verifier = cls(trust)
        with _VERIFIERS_LOCK:
            # The cache holds the material itself, so its id cannot be reused while cached.
            _VERIFIERS[id(trust)] = verifier
            while len(_VERIFIERS) > _VERIFIERS_KEPT:
                _VERIFIERS.popitem(last=False)
        return verifier

    def verify(self, artifact: SignedArtifact, digest: bytes, policy: Policy
               ) -> VerifiedSignature:
        """The verified signature, or `StepFailed` naming the step: whatever goes wrong
        inside a step (a malformed extension, a library's error) is that step's failure."""
        progress = _Progress()
        try:
            return self._verify(artifact, digest, policy, progress)
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(progress.step, _unexpected(exc)) from exc

    def _verify(self, artifact: SignedArtifact, digest: bytes, policy: Policy,
                progress: _Progress) -> VerifiedSignature:
        cert = artifact.certificate
        # (1) The bundle signs the artifact we were asked about.
        progress.step = 1
        if artifact.digest != digest:
            raise StepFailed(1, f"the bundle signs sha256:{artifact.digest.hex()}, not "
                                f"sha256:{digest.hex()}")
        # (2) A trusted TSA timestamped this very signature: that is the signing time.
        progress.step = 2
        signed_at = self._verify_timestamp(artifact)
        # (3) The leaf chains to a pinned root, and was valid at the signing time.
        progress.step = 3
        issuer = self._verify_chain(cert, signed_at)
        # (4) The leaf is a signing certificate of our profile.
        progress.step = 4
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound as exc:
            raise StepFailed(4, "the certificate has no KeyUsage extension (needs "
                                "digitalSignature)") from exc
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = x509.ExtendedKeyUsage([])
        if not ku.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise StepFailed(4, "the certificate is not for code signing "
                                "(needs digitalSignature and EKU codeSigning)")
        # (5) A trusted CT log promised to publish this certificate (its embedded SCT).
        progress.step = 5
        try:
            check_sct(cert, issuer, self._ctlogs, self._key_hashes.get(issuer))
        except LogCheckError as exc:
            raise StepFailed(5, str(exc)) from exc
        # (6) The signature is in the transparency log: body, proof, checkpoint, promise.
        progress.step = 6
        try:
            log_index = check_entry(artifact.tlog_entries, self._tlogs, cert, digest,
                                    artifact.signature)
        except LogCheckError as exc:
            raise StepFailed(6, str(exc)) from exc
        # (7) The signature over the digest verifies with the leaf's key.
        progress.step = 7
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise StepFailed(7, "the certificate's key is not an ECDSA key")
        try:
            key.verify(artifact.signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise StepFailed(7, "the signature does not verify with the certificate's key "
                                "over this digest") from exc
        # (8) Who signed, from which build: issuer, identity, every provenance flag.
        progress.step = 8
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
            for check in self._tsas:
                if check.verify_message(response, artifact.signature):
                    tsa = check.tsa
                    gen_time = response.tst_info.gen_time
                    # A rotated TSA key counts only for times inside its validFor.
                    window = Window(tsa.start, tsa.end)
                    if window.contains(gen_time):
                        return gen_time
                    outside.append(f"the timestamp says {gen_time.isoformat()}, outside its "
                                   f"TSA key's validity {window.describe()}")
        if outside:
            raise StepFailed(2, "; ".join(outside))
        raise StepFailed(2, "no trusted timestamp authority signed a timestamp over this "
                            "signature")

    def _verify_chain(self, cert: x509.Certificate, at: datetime) -> x509.Certificate:
        """Returns the leaf's issuer on the verified path."""
        failures = []
        for ca in self._cas:
            verifier = (
                PolicyBuilder().store(ca.store).time(at)
                .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
                .build_client_verifier()
            )
            try:
                chain = verifier.verify(cert, ca.intermediates).chain
            except VerificationError as exc:
                failures.append(str(exc))
                continue
            # The path stopped at the intermediate, checked against the root once: what
            # depends on the time is the root's validity, checked here as the full path would.
            if ca.above is not None and chain[-1] == ca.above.issued:
                root = ca.above.root
                if not within(root.not_valid_before_utc, root.not_valid_after_utc, at):
                    failures.append(f"the root {root.subject.rfc4514_string()} is not valid "
                                    f"at {at.isoformat()}")
                    continue
            # A rotated CA counts only for leaves it issued, and signatures made, while it was
            # the issuing CA (its validFor).
            window = Window(ca.authority.start, ca.authority.end)
            issued = cert.not_valid_before_utc
            if not window.contains(issued):
                failures.append(f"the leaf was issued at {issued.isoformat()} by a CA trusted "
                                f"only {window.describe()}")
                continue
            if not window.contains(at):
                failures.append(f"the signature was made at {at.isoformat()} with a leaf of a "
                                f"CA trusted only {window.describe()}")
                continue
            return chain[1]
        raise StepFailed(3, "the certificate does not chain to a trusted root at the signing "
                            f"time {at.isoformat()}: {'; '.join(failures)}")


_VERIFIERS: OrderedDict[int, Verifier] = OrderedDict()
_VERIFIERS_LOCK = threading.Lock()
_VERIFIERS_KEPT = 8


@dataclass(frozen=True)
class _Above:
    """The part of a CA's path above its issuing intermediate, verified once: ``root``
    signed ``issued``, and the root is a CA that may issue it. Only the root's validity at
    the signing time is left for each bundle."""

    issued: x509.Certificate
    root: x509.Certificate


@dataclass(frozen=True)
class _CaPath:
    """One CA of the trust root, ready for chain building: trust anchors and intermediates.

    With one intermediate under the root, that intermediate (checked against the root here)
    is a trust anchor too, so each bundle verifies leaf ← intermediate and not also
    intermediate ← root. If the root could constrain the leaf (name constraints, a path
    length), or the check here fails, the path is the trust root's chain to its root, built
    and checked in full for every bundle: the same checks, the same refusals.
    """

    authority: Authority
    store: Store
    intermediates: list[x509.Certificate]
    above: _Above | None

    @classmethod
    def prepare(cls, ca: Authority, ca_policy: ExtensionPolicy) -> _CaPath:
        full = cls(ca, Store([ca.root]), list(ca.chain[:-1]), None)
        if len(ca.chain) != 2:
            return full
        intermediate, root = ca.chain
        try:
            constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
            if constraints.path_length is not None and constraints.path_length < 1:
                return full
        except x509.ExtensionNotFound:
            return full
        try:
            root.extensions.get_extension_for_class(x509.NameConstraints)
            return full
        except x509.ExtensionNotFound:
            pass
        # The root as the issuer of the intermediate, under the CA policy every bundle's path
        # is held to, at a time both are valid (validity is checked per bundle).
        at = max(intermediate.not_valid_before_utc, root.not_valid_before_utc)
        try:
            (PolicyBuilder().store(Store([root])).time(at)
             .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
             .build_client_verifier().verify(intermediate, []))
        except (VerificationError, ValueError):
            return full
        return cls(ca, Store([intermediate, root]), [], _Above(intermediate, root))


class _TimestampCheck:
    """rfc3161-client's ``Verifier.verify_message`` for one trusted TSA, step for step, with
    what is the same for every timestamp done once: the trusted certificates' DER, and the
    TSA leaf's profile (critical EKU with timeStamping), since the token's signer must be
    that very leaf. The response's parts are parsed once per call instead of once per use.
    """

    def __init__(self, tsa: Authority) -> None:
        self.tsa = tsa
        self.leaf = tsa.chain[0]
        self._leaf_der = self.leaf.public_bytes(Encoding.DER)
        self._leaf_issuer, self._leaf_serial = self.leaf.issuer, self.leaf.serial_number
        # As rfc3161-client: the TSA certificate, the roots and the intermediates are the
        # certificates OpenSSL may build the signer's path from.
        self._certificates = list({c.public_bytes(Encoding.DER)
                                   for c in (self.leaf, tsa.root, *tsa.chain[1:-1])})
        try:
            eku = self.leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
            self._leaf_ok = eku.critical and ExtendedKeyUsageOID.TIME_STAMPING in eku.value
        except x509.ExtensionNotFound:
            self._leaf_ok = False

    def verify_message(self, response: TimeStampResponse, message: bytes) -> bool:
        if PKIStatus(response.status) != PKIStatus.GRANTED:
            return False
        signed_data = response.signed_data
        signer_infos = signed_data.signer_infos
        if not signer_infos:
            return False
        tst_info = response.tst_info
        try:
            # The CMS signature, and its signer's path to a trusted certificate at gen_time.
            _rfc3161_rust.pkcs7_verify(response.time_stamp_token(), tst_info.gen_time,
                                       self._certificates)
        except ValueError:
            return False
        # The signer (by the SignerInfo's issuer and serial) must be the trusted TSA leaf.
        if signed_data.certificates:
            if len(signer_infos) != 1:
                return False
            (signer,) = signer_infos
            issuer, serial = signer.issuer, signer.serial_number
            for der in signed_data.certificates:
                if der == self._leaf_der:  # the trusted leaf itself: no need to parse it
                    if (self._leaf_issuer, self._leaf_serial) == (issuer, serial):
                        break
                    continue
                cert = x509.load_der_x509_certificate(der)
                if cert.issuer == issuer and cert.serial_number == serial:
                    return False  # the signer is another certificate than the trusted leaf
            else:
                return False
        if not self._leaf_ok:
            return False
        imprint = tst_info.message_imprint
        digest = _IMPRINT_HASHES.get(imprint.hash_algorithm.dotted_string)
        if digest is None:
            return False
        return bool(imprint.message == digest(message).digest())


_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": hashlib.sha256,
    "2.16.840.1.101.3.4.2.2": hashlib.sha384,
    "2.16.840.1.101.3.4.2.3": hashlib.sha512,
}


@dataclass(frozen=True)
class EntryResult:
    """One entry's verdict; on failure, the step it failed at and why, as data."""

    entry_id: str
    verified: VerifiedSignature | None = None
    error: str | None = None
    revocation: Revocation | None = None
    failed_step: int | None = None
    reason: str | None = None

    @classmethod
    def failed(cls, entry_id: str, failure: StepFailed, verified: VerifiedSignature | None = None,
               revocation: Revocation | None = None) -> EntryResult:
        return cls(entry_id, verified, failure.detail, revocation, failure.step, failure.reason)

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
    """Pass when one entry passes; otherwise say, per entry, which step failed and why.

    One bad entry never aborts the report: any error while checking it is its failure."""
    results = []
    for entry_id, artifact, revocation in entries:
        try:
            verified = verifier.verify(artifact, digest, policy)
        except StepFailed as exc:
            results.append(EntryResult.failed(entry_id, exc))
            continue
        except Exception as exc:  # verify() names the step; this is the last safety net
            results.append(EntryResult(entry_id, error=_unexpected(exc)))
            continue
        if revocation is not None:
            # (9) A verified signature that a maintainer revoked does not count.
            when = revocation.revoked_at.isoformat()
            logged = (f" (transparency log entry {revocation.log_index})"
                      if revocation.log_index is not None else "")
            failure = StepFailed(REVOCATION_STEP, f"revoked by {revocation.revoked_by} at {when}: "
                                    f"{revocation.reason}{logged}")
            results.append(EntryResult.failed(entry_id, failure, verified, revocation))
            continue
        results.append(EntryResult(entry_id, verified))
    return Report(tuple(results), revocation_checked)
