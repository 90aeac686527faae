"""The verification procedure, as numbered steps; each failure names its step.

Trust material comes in through the constructor (a pinned ``trusted_root.json``), the policy
as an argument; no I/O happens here. Revocation is known only to the service: callers pass
what it said, or ``None`` offline, and the report says which.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
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
from rfc3161_client.tsp import TimeStampTokenInfo

from signer.bundle import SignedArtifact
from signer.dsse import IN_TOTO_PAYLOAD_TYPE, DsseError, Statement
from signer.dsse import verify_signature as verify_envelope
from signer.errors import UsageError, VerificationFailed
from signer.key_details import PublicKeyTypes
from signer.provenance import Provenance
from signer.transparency.sct import der_integer_contents, issuer_key_hash
from signer.trust import Authority, TrustMaterial
from signer.verification import cms
from signer.verification.policy import (
    Policy,
    PolicyError,
    certificate_identities,
    certificate_provenance,
)
from signer.verification.transparency import (
    LogCheckError,
    Signed,
    check_entry,
    check_sct,
    log_keys,
    outside_window,
    promised_time,
    tlog_keys,
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
    """What a verified bundle says. ``identity`` is the leaf's first identity (all of them in
    ``identities``), or ``key <SHA-256 of the SPKI>`` for a managed key; ``log_index`` is None
    for a bundle of an instance without a log (GitHub's private attestations);
    ``statement`` is the in-toto statement of a DSSE bundle."""

    identity: str
    provenance: Provenance
    signed_at: datetime
    log_index: int | None
    statement: Statement | None = None
    identities: tuple[str, ...] = ()
    verified_times: tuple[datetime, ...] = ()


def _ee_policy() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    # Web PKI defaults, except that our leaves carry codeSigning instead of clientAuth; the
    # codeSigning EKU is checked in step 4. Same policies as sigstore-python.
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    return ca, ee


class Verifier:
    """Verifies bundles against one trust root: signer's, Sigstore's public instance, GitHub's,
    a private deployment's.

    Whatever is the same for every bundle is prepared here, once: the TSA checks (trusted
    certificates, the TSA leaf's profile), each CA's intermediate checked against its root,
    the CT and log keys. Nothing about a bundle is remembered: every call checks every step.
    The one thing learnt along the way is OpenSSL's verdict on a TSA leaf's path (see
    `_TimestampCheck`), kept in a set; one instance may serve many threads.

    The trust root says what the instance has: with no transparency log listed, bundles
    carry no log entry (GitHub's private attestations); with no CT log, leaves carry no SCT.
    """

    def __init__(self, trust: TrustMaterial) -> None:
        if not trust.cas and not trust.tlogs and not trust.tsas:
            raise UsageError("The trust root names no certificate authority, transparency log "
                             "or timestamp authority.",
                             "Export a complete trust root with 'signer trust-root export'.")
        self.trust = trust
        self._ca_policy, self._ee_policy = _ee_policy()
        self._tlogs = tlog_keys(trust.tlogs)
        self._ctlogs = log_keys(trust.ctlogs)
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

    def verify(self, artifact: SignedArtifact, digest: bytes, policy: Policy | None, *,
               predicate_type: str | None = None, key: PublicKeyTypes | None = None,
               digests: Mapping[str, bytes] | None = None) -> VerifiedSignature:
        """The verified signature, or `StepFailed` naming the step: whatever goes wrong
        inside a step (a malformed extension, a library's error) is that step's failure.

        ``digest`` is the artifact's SHA-256; ``digests`` may add others (``sha512``: what an
        in-toto subject may name instead). A DSSE bundle is an attestation: verified only
        with the ``predicate_type`` its statement must have. ``key``: the managed key a
        bundle without a certificate must be signed with (then ``policy`` may be None).
        """
        progress = _Progress()
        try:
            return self._verify(artifact, {**(digests or {}), "sha256": digest}, policy,
                                predicate_type, key, progress)
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(progress.step, _unexpected(exc)) from exc

    def _verify(self, artifact: SignedArtifact, digests: Mapping[str, bytes],
                policy: Policy | None, predicate_type: str | None,
                given_key: PublicKeyTypes | None, progress: _Progress) -> VerifiedSignature:
        cert = artifact.leaf
        # (1) The bundle signs the artifact we were asked about: the message digest, or a
        # subject of the attestation's in-toto statement (of the predicate type asked for).
        progress.step = 1
        statement = self._verify_content(artifact, digests, predicate_type)
        # (2) When it was signed: each RFC 3161 timestamp by a trusted TSA over this very
        # signature, and a Rekor v1 entry's integrated time that its promise signs (verified
        # with the entry in step 6). At least one; none in the future.
        progress.step = 2
        times = self._verified_times(artifact)
        # (3) The signer: the leaf chains to a trusted CA at every verified time, or the
        # bundle is signed with the managed key given.
        progress.step = 3
        if cert is None:
            if given_key is None:
                raise StepFailed(3, f"the bundle is signed with a managed key (hint "
                                    f"{artifact.key_hint!r}), not a certificate: verify it "
                                    "with --key")
            key: PublicKeyTypes = given_key
            issuer = None
        else:
            if given_key is not None:
                raise StepFailed(3, "the bundle is signed with a certificate, not a managed "
                                    "key: verify it with the identity flags, without --key")
            issuer = self._verify_chain(cert, times)
            leaf_key = cert.public_key()
            if not isinstance(leaf_key, PublicKeyTypes):
                raise StepFailed(3, f"the certificate's key ({type(leaf_key).__name__}) is "
                                    "not one Sigstore signs with")
            key = leaf_key
        if cert is not None and issuer is not None:
            # (4) The leaf is a signing certificate of Fulcio's profile.
            progress.step = 4
            _check_profile(cert)
            # (5) A trusted CT log promised to publish this certificate (its embedded SCT).
            progress.step = 5
            if self._ctlogs or self.trust.ctlogs:
                try:
                    check_sct(cert, issuer, self._ctlogs, self._key_hashes.get(issuer))
                except LogCheckError as exc:
                    raise StepFailed(5, str(exc)) from exc
        # (6) The signature is in a trusted log: body, proof, checkpoint, promise, key window.
        progress.step = 6
        log_index = self._verify_log_entry(artifact, cert, key, times)
        # (7) The signature verifies with the signer's key: over the digest, or over the
        # envelope's PAE.
        progress.step = 7
        _verify_signature(artifact, key)
        if cert is None:
            identity = "key " + hashlib.sha256(key.public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
            return VerifiedSignature(identity, Provenance(), times[0], log_index, statement,
                                     (identity,), times)
        # (8) Who signed, from which build: issuer, identity (any of the leaf's), every
        # provenance flag.
        progress.step = 8
        if policy is None:
            raise StepFailed(8, "no identity policy was given for a certificate bundle")
        try:
            identities = certificate_identities(cert)
            provenance = certificate_provenance(cert)
            policy.verify(identities, provenance)
        except (PolicyError, UsageError) as exc:
            raise StepFailed(8, str(exc)) from exc
        return VerifiedSignature(identities[0], provenance, times[0], log_index, statement,
                                 identities, times)

    def _verify_content(self, artifact: SignedArtifact, digests: Mapping[str, bytes],
                        predicate_type: str | None) -> Statement | None:
        envelope = artifact.envelope
        if envelope is None:
            if predicate_type is not None:
                raise StepFailed(1, "the bundle is a signature, not an attestation: it has no "
                                    f"statement of predicate type {predicate_type!r}")
            assert artifact.digest is not None
            if artifact.digest != digests["sha256"]:
                raise StepFailed(1, f"the bundle signs sha256:{artifact.digest.hex()}, not "
                                    f"sha256:{digests['sha256'].hex()}")
            return None
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise StepFailed(1, f"the DSSE payload type is {envelope.payload_type!r}, not an "
                                f"in-toto statement ({IN_TOTO_PAYLOAD_TYPE})")
        try:
            statement = Statement.parse(envelope.payload)
        except DsseError as exc:
            raise StepFailed(1, str(exc)) from exc
        if predicate_type is None:
            raise StepFailed(1, f"the bundle is an attestation (predicate type "
                                f"{statement.predicate_type!r}): pass --predicate-type to "
                                "verify it as one")
        if statement.predicate_type != predicate_type:
            raise StepFailed(1, f"the statement's predicate type is "
                                f"{statement.predicate_type!r}, not {predicate_type!r}")
        for subject in statement.subjects:
            for algorithm, value in digests.items():
                if subject.digest.get(algorithm) == value.hex():
                    return statement
        named = ", ".join(f"{a}:{v[:16]}…" for s in statement.subjects
                          for a, v in s.digest.items())
        raise StepFailed(1, f"the artifact (sha256:{digests['sha256'].hex()}) is not a subject "
                            f"of the statement (subjects: {named})")

    def _verified_times(self, artifact: SignedArtifact) -> tuple[datetime, ...]:
        times = [self._verify_timestamp(der, artifact.signature) for der in artifact.timestamps]
        now = datetime.now(UTC)
        for entry in artifact.tlog_entries:
            integrated = promised_time(entry)
            if integrated is None:
                continue
            if integrated > now + _CLOCK_SKEW:
                raise StepFailed(2, f"the log entry's integrated time {integrated.isoformat()} "
                                    "is in the future")
            times.append(integrated)
        if not times:
            raise StepFailed(2, "the bundle has no RFC 3161 timestamp and no log entry with "
                                "an inclusion promise: nothing says when it was signed")
        return tuple(times)

    def _verify_timestamp(self, der: bytes, signature: bytes) -> datetime:
        """The time a trusted TSA attests, within that TSA's window and its certificate's
        validity; any timestamp that is not is the bundle's failure (it carries a false
        claim)."""
        if not self._tsas:
            raise StepFailed(2, "the bundle carries an RFC 3161 timestamp, and the trust root "
                                "lists no timestamp authority")
        try:
            response = decode_timestamp_response(der)
        except ValueError as exc:
            raise StepFailed(2, "the timestamp is not a valid RFC 3161 response") from exc
        outside = []
        tst_info = response.tst_info
        gen_time = tst_info.gen_time
        token = cms.read(cms.token_of_response(der) or b"")
        for check in self._tsas:
            start, end = check.leaf_validity
            # Said first and plainly: a token by a pinned TSA's certificate at a time that
            # certificate does not cover (the CMS check below would refuse it too).
            if not within(start, end, gen_time) and check.signed_by(response):
                outside.append(f"the timestamp says {gen_time.isoformat()}, outside its TSA "
                               f"certificate's validity ({start.isoformat()} to "
                               f"{end.isoformat()})")
                continue
            if not check.verify_message(response, tst_info, token, signature):
                continue
            # A rotated TSA key counts only for times inside its validFor.
            window = check.window
            if window.contains(gen_time):
                return gen_time
            outside.append(f"the timestamp says {gen_time.isoformat()}, outside its TSA "
                           f"key's validity {window.describe()}")
        if outside:
            raise StepFailed(2, "; ".join(outside))
        raise StepFailed(2, "no trusted timestamp authority signed a timestamp over this "
                            "signature")

    def _verify_log_entry(self, artifact: SignedArtifact, cert: x509.Certificate | None,
                          key: PublicKeyTypes, times: Sequence[datetime]) -> int | None:
        entries = artifact.tlog_entries
        if not self._tlogs and not self.trust.tlogs:
            if entries:
                raise StepFailed(6, "the bundle carries a log entry, and the trust root lists "
                                    "no transparency log")
            return None  # an instance without a log: the TSA's time stands alone
        if len(entries) != 1:
            raise StepFailed(6, f"the bundle must hold exactly one log entry, it holds "
                                f"{len(entries)}")
        signed = Signed(artifact.signature, artifact.digest, artifact.envelope, cert, key)
        try:
            logged = check_entry(entries[0], self._tlogs, artifact.version, signed)
        except LogCheckError as exc:
            raise StepFailed(6, str(exc)) from exc
        if logged.rekor_v2 and not artifact.timestamps:
            raise StepFailed(6, "a Rekor v2 entry carries no time: the bundle needs an RFC 3161 "
                                "timestamp")
        # A rotated log key is trusted only for entries it logged while it was the log's key:
        # the integrated time it signed (v1), or the signing time (v2).
        judged = [logged.integrated_time] if logged.integrated_time else list(times)
        for at in judged:
            outside = outside_window(logged.log, at)
            if outside:
                raise StepFailed(6, f"the entry was logged at {at.isoformat()} by log key "
                                    f"{entries[0].log_id.key_id.hex()}, {outside}")
        return logged.log_index

    def _verify_chain(self, cert: x509.Certificate, times: Sequence[datetime]
                      ) -> x509.Certificate:
        """Returns the leaf's issuer on the path verified at every one of ``times``."""
        if not self._cas:
            raise StepFailed(3, "the bundle is signed with a certificate, and the trust root "
                                "lists no certificate authority")
        # Every verified time must fall in the leaf's short life, ends included; said plainly
        # before the path is built (which would refuse it too).
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        for at in times:
            if not within(start, end, at):
                raise StepFailed(3, f"the verified time {at.isoformat()} is outside the leaf's "
                                    f"validity ({start.isoformat()} to {end.isoformat()})")
        first, *others = times
        failures = []
        for ca in self._cas:
            try:
                chain = self._path(ca, cert, first)
            except _PathRefused as exc:
                failures.append(str(exc))
                continue
            # The path is the same at every time; what depends on the time is each
            # certificate's validity and the CA's window, checked as path building would.
            late = next((f"the path is not valid at {at.isoformat()}" for at in others
                         if not all(within(c.not_valid_before_utc, c.not_valid_after_utc, at)
                                    for c in chain)
                         or not ca.window.contains(at)),
                        None)
            if late:
                failures.append(late)
                continue
            return chain[1]
        raise StepFailed(3, "the certificate does not chain to a trusted root at the signing "
                            f"time {first.isoformat()}: {'; '.join(failures)}")

    def _path(self, ca: _CaPath, cert: x509.Certificate, at: datetime
              ) -> list[x509.Certificate]:
        verifier = (
            PolicyBuilder().store(ca.store).time(at)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            chain = list(verifier.verify(cert, ca.intermediates).chain)
        except VerificationError as exc:
            raise _PathRefused(str(exc)) from exc
        # The path stopped at the intermediate, checked against the root once: what
        # depends on the time is the root's validity, checked here as the full path would.
        if ca.above is not None and chain[-1] == ca.above.issued:
            root = ca.above.root
            if not within(root.not_valid_before_utc, root.not_valid_after_utc, at):
                raise _PathRefused(f"the root {root.subject.rfc4514_string()} is not valid "
                                   f"at {at.isoformat()}")
            chain.append(root)
        # A rotated CA counts only for leaves it issued, and signatures made, while it was
        # the issuing CA (its validFor).
        window = ca.window
        issued = cert.not_valid_before_utc
        if not window.contains(issued):
            raise _PathRefused(f"the leaf was issued at {issued.isoformat()} by a CA trusted "
                               f"only {window.describe()}")
        if not window.contains(at):
            raise _PathRefused(f"the signature was made at {at.isoformat()} with a leaf of a "
                               f"CA trusted only {window.describe()}")
        return chain


class _PathRefused(Exception):
    """One CA of the trust root does not vouch for the leaf; the message says why."""


# A log's clock and ours may differ by a little; an integrated time later than this is a lie.
_CLOCK_SKEW = timedelta(minutes=5)


def _check_profile(cert: x509.Certificate) -> None:
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


def _verify_signature(artifact: SignedArtifact, key: PublicKeyTypes) -> None:
    signer = "the certificate's key" if artifact.leaf is not None else "the key given"
    if artifact.envelope is not None:
        if isinstance(key, rsa.RSAPublicKey):
            raise StepFailed(7, "RSA-signed DSSE envelopes are not supported")
        try:
            verify_envelope(artifact.envelope, key)
        except DsseError as exc:
            raise StepFailed(7, f"{exc} ({signer})") from exc
        return
    assert artifact.digest is not None
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(artifact.signature, artifact.digest, _ECDSA_PREHASHED_SHA256)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(artifact.signature, artifact.digest, padding.PKCS1v15(),
                       _PREHASHED_SHA256)
        else:
            raise StepFailed(7, "an Ed25519 key cannot sign a message digest (Sigstore signs "
                                "the artifact itself with Ed25519, which a digest cannot check)")
    except InvalidSignature as exc:
        raise StepFailed(7, f"the signature does not verify with {signer} over this "
                            "digest") from exc


# Signature algorithms are immutable, and some take microseconds to make.
_PREHASHED_SHA256 = Prehashed(hashes.SHA256())
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(_PREHASHED_SHA256)
_ECDSA = {h.name: ec.ECDSA(h) for h in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512())}

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

    @cached_property  # the same for every bundle
    def window(self) -> Window:
        return Window(self.authority.start, self.authority.end)

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

    The CMS step is ``pkcs7_verify`` (OpenSSL's ``PKCS7_verify``: the signature, and the
    signer's path to the trusted certificates at the token's time), except for a token in
    the usual shape (`cms.read`) signed by the pinned leaf: its signature is checked here as
    ``PKCS7_verify`` computes it, and the leaf's path is OpenSSL's verdict on an earlier
    token with the same embedded certificates, reused only while every trusted certificate
    is valid (then the path OpenSSL builds is the same, and nothing else in it depends on
    the time). Anything else, or the first such token, goes to ``pkcs7_verify``.
    """

    def __init__(self, tsa: Authority) -> None:
        self.tsa = tsa
        self.leaf = tsa.chain[0]
        self.leaf_validity = (self.leaf.not_valid_before_utc, self.leaf.not_valid_after_utc)
        self.window = Window(tsa.start, tsa.end)
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
        # The checks without OpenSSL need an ECDSA leaf, the only trusted certificate with
        # its serial number (OpenSSL finds the signer by issuer and serial), and one
        # certificate per subject (so that OpenSSL builds the leaf's path one way only).
        key = self.leaf.public_key()
        others = tsa.chain[1:]
        self._leaf_key = key if (
            isinstance(key, ec.EllipticCurvePublicKey)
            and all(c.serial_number != self._leaf_serial for c in others)
            and len({c.subject.public_bytes() for c in tsa.chain}) == len(tsa.chain)) else None
        self._leaf_sid = (self._leaf_issuer.public_bytes(), der_integer_contents(self._leaf_serial))
        self._trusted_der = frozenset(self._certificates)
        # When every trusted certificate is valid: OpenSSL's notBefore <= t < notAfter.
        self._valid_from = max(c.not_valid_before_utc for c in tsa.chain)
        self._valid_to = min(c.not_valid_after_utc for c in tsa.chain)
        # Why: the leaf's path, checked by OpenSSL once per set of embedded certificates
        # (keyed by their exact DER), not once per token. At most a few sets exist.
        self._paths: set[tuple[bytes, ...]] = set()

    def signed_by(self, response: TimeStampResponse) -> bool:
        """Whether the token's one SignerInfo names this TSA's leaf (unverified)."""
        infos = response.signed_data.signer_infos
        if len(infos) != 1:
            return False
        (info,) = infos
        return (info.issuer, info.serial_number) == (self._leaf_issuer, self._leaf_serial)

    def verify_message(self, response: TimeStampResponse, tst_info: TimeStampTokenInfo,
                       token: cms.SignedToken | None, message: bytes) -> bool:
        """``token``: `cms.read` of this response's token, if it has that shape."""
        if PKIStatus(response.status) != PKIStatus.GRANTED:
            return False
        if not self._cms_verified(response, tst_info.gen_time, token):
            return False
        if not self._leaf_ok:
            return False
        imprint = tst_info.message_imprint
        digest = _IMPRINT_HASHES.get(imprint.hash_algorithm.dotted_string)
        if digest is None:
            return False
        return bool(imprint.message == digest(message).digest())

    def _cms_verified(self, response: TimeStampResponse, gen_time: datetime,
                      token: cms.SignedToken | None) -> bool:
        """The CMS signature and the signer's path at ``gen_time``, and the signer is the
        trusted leaf."""
        # The embedded certificates, if the signature was checked here (and every trusted
        # certificate is valid at gen_time): what OpenSSL's verdict on the path depends on.
        path = (token.certificates if token is not None and self._all_valid(gen_time)
                and self._signed_by_leaf(token) else None)
        if path is not None and path in self._paths:
            return True
        if not self._openssl_verified(response, gen_time):
            return False
        if path is not None and len(self._paths) < _PATHS_KEPT:
            self._paths.add(path)
        return True

    def _all_valid(self, at: datetime) -> bool:
        """Every trusted certificate is valid at ``at`` in whole seconds, whichever way
        OpenSSL's time (a ``time_t``) was rounded."""
        floor = at.replace(microsecond=0)
        ceiling = floor if at == floor else floor + timedelta(seconds=1)
        return self._valid_from <= floor and ceiling < self._valid_to

    def _signed_by_leaf(self, token: cms.SignedToken) -> bool:
        """What ``PKCS7_verify`` checks of the signature, for a token naming the leaf and
        embedding only trusted certificates (so the leaf is the signer it finds)."""
        if self._leaf_key is None or (token.issuer, token.serial) != self._leaf_sid:
            return False
        if not self._trusted_der.issuperset(token.certificates):
            return False
        if token.message_digest != hashlib.new(token.digest.name, token.content).digest():
            return False
        try:
            self._leaf_key.verify(token.signature, token.signed_attributes,
                                  _ECDSA[token.digest.name])
        except InvalidSignature:
            return False
        return True

    def _openssl_verified(self, response: TimeStampResponse, gen_time: datetime) -> bool:
        signed_data = response.signed_data
        signer_infos = signed_data.signer_infos
        if not signer_infos:
            return False
        try:
            # The CMS signature, and its signer's path to a trusted certificate at gen_time.
            _rfc3161_rust.pkcs7_verify(response.time_stamp_token(), gen_time,
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
        return True


_PATHS_KEPT = 16


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


@dataclass(frozen=True)
class VerifyOptions:
    """What `Verifier.verify` takes beyond the artifact's SHA-256 and the policy."""

    predicate_type: str | None = None
    key: PublicKeyTypes | None = None
    digests: Mapping[str, bytes] = field(default_factory=dict)


def verify_entries(
    verifier: Verifier,
    entries: Sequence[tuple[str, SignedArtifact, Revocation | None]],
    digest: bytes,
    policy: Policy | None,
    revocation_checked: bool,
    options: VerifyOptions | None = None,
) -> Report:
    """Pass when one entry passes; otherwise say, per entry, which step failed and why.

    One bad entry never aborts the report: any error while checking it is its failure."""
    options = options or VerifyOptions()
    results = []
    for entry_id, artifact, revocation in entries:
        try:
            verified = verifier.verify(artifact, digest, policy,
                                       predicate_type=options.predicate_type, key=options.key,
                                       digests=options.digests)
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
