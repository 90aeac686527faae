"""The verifier's corpus beyond the service's own bundle shape: one bundle per rule of issue 16.

Called by ``make_verification_assets.py`` (run that one), with the same trust material: our
CA, TSA, Rekor v1-style log (the service's `TransparencyLog`) and CT log, plus a Rekor v2-style
log made here (an in-memory RFC 6962 tree, checkpoints as C2SP signed notes by an Ed25519
key, entries as rekor-tiles writes them) and a witness that cosigns. Written to
``tests/assets/corpus/``; ``corpus/README.md`` says what each shows. Good bundles verify;
each broken one changes one thing and fails at one step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer import bundle as bundles
from signer.dsse import Statement, pae
from signer.sigstore_json import (
    SHA2_256,
    Bundle,
    Checkpoint,
    DsseEnvelope,
    DsseSignature,
    HashOutput,
    InclusionProof,
    KindVersion,
    LogId,
    MessageSignature,
    PublicKey,
    PublicKeyIdentifier,
    RFC3161SignedTimestamp,
    TimeRange,
    TimestampVerificationData,
    TransparencyLogEntry,
    TransparencyLogInstance,
    VerificationMaterial,
    X509Certificate,
    X509CertificateChain,
)
from signer.transparency import merkle, note, rekor, rekor_bodies
from signer.transparency.checkpoint import Checkpoint as CheckpointBody
from signer.trust import TrustMaterial

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
V2_URL = "https://signer-v2.assets.example"
V2_NAME = "signer-v2.assets.example"
WITNESS_NAME = "witness.assets.example"


class Ed25519Signer:
    def __init__(self, seed: str) -> None:
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"signer test asset {seed}".encode()).digest())
        self.public_key = self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class RekorV2:
    """A Rekor v2-style log in memory: leaves are bodies, checkpoints C2SP notes."""

    def __init__(self) -> None:
        self.signer = Ed25519Signer("rekor v2 log")
        self.witness = Ed25519Signer("witness")
        self.nodes = merkle.MemoryNodes()
        self.nodes.append([merkle.leaf_hash(b"earlier entry %d" % n) for n in range(6)])
        self.log_id = note.log_id(V2_NAME, self.signer.public_key)

    def instance(self, start: datetime) -> TransparencyLogInstance:
        der = self.signer.public_key.public_bytes(Encoding.DER,
                                                  PublicFormat.SubjectPublicKeyInfo)
        return TransparencyLogInstance(
            base_url=V2_URL, hash_algorithm=SHA2_256,
            public_key=PublicKey(key_details="PKIX_ED25519", raw_bytes=der,
                                 valid_for=TimeRange(start=start)),
            log_id=LogId(key_id=hashlib.sha256(der).digest()))

    def entry(self, kind: str, body: bytes, cosigned: bool = False) -> TransparencyLogEntry:
        index = self.nodes.size
        self.nodes.append([merkle.leaf_hash(body)])
        size, root = self.nodes.size, self.nodes.root()
        proof = merkle.inclusion_proof(index, size, self.nodes)
        envelope = note.sign_note(CheckpointBody(V2_NAME, size, root).body(), V2_NAME,
                                  self.signer)
        if cosigned:  # witness signatures on both sides of the log's
            envelope = note.cosign_note(envelope, WITNESS_NAME, self.witness)
            parsed = note.parse_note(envelope)
            before = note.NoteSignature("witness2.assets.example", parsed.signatures[1].key_id,
                                        parsed.signatures[1].signature)
            envelope = note.SignedNote(parsed.text, (before, *parsed.signatures)).render()
        return TransparencyLogEntry(
            log_index=bundles.U64(index), log_id=LogId(key_id=self.log_id),
            kind_version=KindVersion(kind=kind, version=rekor_bodies.V002),
            canonicalized_body=body,
            inclusion_proof=InclusionProof(
                log_index=bundles.U64(index), root_hash=root, tree_size=bundles.U64(size),
                hashes=tuple(proof), checkpoint=Checkpoint(envelope=envelope)))


def make_bundle(media_type: str, material: dict[str, Any], timestamps: list[bytes],
                entries: list[TransparencyLogEntry], *, digest: bytes | None = None,
                signature: bytes | None = None, envelope: DsseEnvelope | None = None) -> str:
    tsd = TimestampVerificationData(rfc3161_timestamps=tuple(
        RFC3161SignedTimestamp(signed_timestamp=t) for t in timestamps)) if timestamps else None
    model = Bundle(
        media_type=media_type,
        verification_material=VerificationMaterial(
            tlog_entries=tuple(entries), timestamp_verification_data=tsd, **material),
        message_signature=MessageSignature(
            message_digest=HashOutput(algorithm=SHA2_256, digest=digest),
            signature=signature) if digest is not None and signature is not None else None,
        dsse_envelope=envelope)
    return json.dumps(model.to_dict(), indent=2) + "\n"


def certificate(cert: x509.Certificate) -> dict[str, Any]:
    return {"certificate": X509Certificate(raw_bytes=cert.public_bytes(Encoding.DER))}


def chain(*certs: x509.Certificate) -> dict[str, Any]:
    return {"x509_certificate_chain": X509CertificateChain(certificates=tuple(
        X509Certificate(raw_bytes=c.public_bytes(Encoding.DER)) for c in certs))}


def sign_envelope(key: ec.EllipticCurvePrivateKey, statement: bytes,
                  payload_type: str = "application/vnd.in-toto+json",
                  over_pae: bool = True) -> DsseEnvelope:
    signed = pae(payload_type, statement) if over_pae else statement
    return DsseEnvelope(payload=statement, payload_type=payload_type, signatures=(
        DsseSignature(sig=key.sign(signed, ec.ECDSA(hashes.SHA256()))),))


def make(ctx: Any) -> TrustMaterial:
    """Write the corpus. ``ctx``: make_verification_assets' hierarchy, logs, keys and helpers;
    returns the trust root with the v2 log (written as ``corpus/trusted_root.json``)."""
    out = ctx.HERE / "corpus"
    out.mkdir(exist_ok=True)

    def write(name: str, text: str) -> None:
        (out / name).write_text(text)
        print(f"wrote {out / name}")

    ours, logs, trust, digest = ctx.ours, ctx.logs, ctx.trust, ctx.digest
    v2 = RekorV2()
    trust = dataclasses.replace(trust, tlogs=(*trust.tlogs, v2.instance(ctx.start)))
    write("trusted_root.json", ctx.trust_json(trust))
    leaf_key = ctx.key("corpus leaf")
    cert = ctx.issue(ours, leaf_key, logs.ctlog.signer)
    pem = cert.public_bytes(Encoding.PEM)
    v03 = bundles.MEDIA_TYPE

    def v1_entry(kind: str, version: str, body: bytes) -> TransparencyLogEntry:
        return logs.entry(body, kind, version)  # type: ignore[no-any-return]

    # -- (1) DSSE attestations: in-toto statements about the artifact ----------------------
    statement = Statement.about("app.tar.gz", digest, PREDICATE_TYPE,
                                {"buildDefinition": {"buildType": "https://example/v1"}})
    envelope = sign_envelope(leaf_key, statement.to_json())
    envelope_json = envelope.to_json().encode()
    signature = envelope.signatures[0].sig
    ts = ours.tsa.timestamp(signature)
    write("dsse-rekor-v1-dsse.sigstore.json", make_bundle(v03, certificate(cert), [ts], [
        v1_entry("dsse", "0.0.1", rekor_bodies.dsse_v001_body(envelope_json, envelope, pem))],
        envelope=envelope))
    write("dsse-rekor-v1-intoto.sigstore.json", make_bundle(v03, certificate(cert), [ts], [
        v1_entry("intoto", "0.0.2", rekor_bodies.intoto_v002_body(envelope_json, envelope,
                                                                  pem))], envelope=envelope))
    other = Statement.about("other.tar.gz", hashlib.sha256(b"other").digest(), PREDICATE_TYPE,
                            None)
    other_envelope = sign_envelope(leaf_key, other.to_json())
    write("dsse-subject-is-another-artifact.sigstore.json", make_bundle(
        v03, certificate(cert), [ours.tsa.timestamp(other_envelope.signatures[0].sig)], [
            v1_entry("dsse", "0.0.1", rekor_bodies.dsse_v001_body(
                other_envelope.to_json().encode(), other_envelope, pem))],
        envelope=other_envelope))
    raw = sign_envelope(leaf_key, statement.to_json(), over_pae=False)
    write("dsse-signature-over-payload-not-pae.sigstore.json", make_bundle(
        v03, certificate(cert), [ours.tsa.timestamp(raw.signatures[0].sig)], [
            v1_entry("dsse", "0.0.1", rekor_bodies.dsse_v001_body(raw.to_json().encode(), raw,
                                                                  pem))], envelope=raw))

    # -- (2) Rekor v2 entries: the time from the TSA ---------------------------------------
    message_signature = ctx.sign(leaf_key, digest)
    message_ts = ours.tsa.timestamp(message_signature)
    verifier = rekor_bodies.certificate_verifier(cert)
    hashed = rekor_bodies.hashedrekord_v002_body(digest, message_signature, verifier)
    write("rekor-v2-hashedrekord.sigstore.json", make_bundle(
        v03, certificate(cert), [message_ts], [v2.entry("hashedrekord", hashed)],
        digest=digest, signature=message_signature))
    write("rekor-v2-dsse.sigstore.json", make_bundle(v03, certificate(cert), [ts], [
        v2.entry("dsse", rekor_bodies.dsse_v002_body(envelope, verifier))], envelope=envelope))
    write("rekor-v2-dsse-as-hashedrekord.sigstore.json", make_bundle(
        v03, certificate(cert), [ts], [v2.entry(
            "hashedrekord", rekor_bodies.dsse_as_hashedrekord_v002_body(envelope, verifier))],
        envelope=envelope))
    write("rekor-v2-without-timestamp.sigstore.json", make_bundle(
        v03, certificate(cert), [], [v2.entry("hashedrekord", hashed)], digest=digest,
        signature=message_signature))

    # -- (3) checkpoints: cosigned, only a witness's, missing its root ------------------------
    write("rekor-v2-checkpoint-cosigned-by-witnesses.sigstore.json", make_bundle(
        v03, certificate(cert), [message_ts], [v2.entry("hashedrekord", hashed, cosigned=True)],
        digest=digest, signature=message_signature))
    entry = v2.entry("hashedrekord", hashed)
    assert entry.inclusion_proof is not None and entry.inclusion_proof.checkpoint is not None
    text = note.parse_note(entry.inclusion_proof.checkpoint.envelope).text
    witness_only = note.sign_note(text, WITNESS_NAME, v2.witness)
    write("rekor-v2-checkpoint-signed-only-by-a-witness.sigstore.json", make_bundle(
        v03, certificate(cert), [message_ts], [_with_checkpoint(entry, witness_only)],
        digest=digest, signature=message_signature))
    rootless = note.sign_note("\n".join(text.split("\n")[:2]) + "\n", V2_NAME, v2.signer)
    write("rekor-v2-checkpoint-without-root-hash.sigstore.json", make_bundle(
        v03, certificate(cert), [message_ts], [_with_checkpoint(entry, rootless)],
        digest=digest, signature=message_signature))

    # -- (4) time: a v0.1 bundle whose only time is the promised integrated time; an
    # integrated time in the future; a v0.1 bundle without its promise -----------------------
    body = rekor.hashedrekord_body(digest, message_signature, pem)
    v1 = v1_entry("hashedrekord", "0.0.1", body)
    promise_only = dataclasses.replace(v1, inclusion_proof=None)
    write("v01-chain-promise-only.sigstore.json", make_bundle(
        bundles.V01_MEDIA_TYPE, chain(cert, ours.ca.certificate), [], [promise_only],
        digest=digest, signature=message_signature))
    write("v01-without-inclusion-promise.sigstore.json", make_bundle(
        bundles.V01_MEDIA_TYPE, chain(cert, ours.ca.certificate), [message_ts],
        [dataclasses.replace(v1, inclusion_promise=None)], digest=digest,
        signature=message_signature))
    write("v02-chain-proof-and-promise.sigstore.json", make_bundle(
        bundles.V02_MEDIA_TYPE, chain(cert, ours.ca.certificate), [message_ts], [v1],
        digest=digest, signature=message_signature))
    # Far ahead, so that the asset stays in the future for as long as it is kept.
    future = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
    promise = rekor.signed_entry_timestamp(logs.tlog.signer, body, future, logs.tlog.log_id,
                                           int(v1.log_index))
    write("integrated-time-in-the-future.sigstore.json", make_bundle(
        v03, certificate(cert), [message_ts], [dataclasses.replace(
            v1, integrated_time=bundles.U64(future),
            inclusion_promise=dataclasses.replace(v1.inclusion_promise,
                                                  signed_entry_timestamp=promise))],
        digest=digest, signature=message_signature))

    # A TSA whose certificate expired before it stamped: pinned, in its window, refused.
    from signer.service import ca as cas
    from signer.service.keys import FileKey
    from signer.service.tsa import TimestampAuthority
    from signer.trust import Authority
    expired_key = ctx.key("expired tsa")
    now = datetime.now(UTC).replace(microsecond=0)
    expired_cert = cas._end_entity(  # the service's TSA profile, with a past validity
        x509.CertificateBuilder().subject_name(cas._name("signer expired timestamp authority"))
        .not_valid_before(now - timedelta(days=2)).not_valid_after(now - timedelta(days=1)),
        expired_key.public_key(), ours.root, x509.oid.ExtendedKeyUsageOID.TIME_STAMPING,
        eku_critical=True).sign(ours.root_key, hashes.SHA256())
    expired_tsa = TimestampAuthority(FileKey(expired_key), [expired_cert, ours.root])
    write("trusted_root-with-expired-tsa.json", ctx.trust_json(dataclasses.replace(
        trust, tsas=(*trust.tsas, Authority((expired_cert, ours.root), ctx.start)))))
    write("timestamp-outside-tsa-certificate-validity.sigstore.json", make_bundle(
        v03, certificate(cert), [expired_tsa.timestamp(message_signature)], [
            v1_entry("hashedrekord", "0.0.1", body)], digest=digest,
        signature=message_signature))

    # -- (5) an SCT with extensions -----------------------------------------------------------
    ext_key = ctx.key("leaf with sct extensions")
    ext_cert = ctx.issue(ours, ext_key, logs.ctlog.signer, sct_extensions=b"\x00\x00\x05\x00\x00\x00\x00\x07")
    ext_signature = ctx.sign(ext_key, digest)
    write("leaf-sct-with-extensions.sigstore.json", make_bundle(
        v03, certificate(ext_cert), [ours.tsa.timestamp(ext_signature)], [
            v1_entry("hashedrekord", "0.0.1", rekor.hashedrekord_body(
                digest, ext_signature, ext_cert.public_bytes(Encoding.PEM)))],
        digest=digest, signature=ext_signature))

    # -- (6) a managed key ------------------------------------------------------------------
    managed = ctx.key("managed key")
    other_key = ctx.key("another managed key")
    for name, k in (("key-managed.pem", managed), ("key-another.pem", other_key)):
        write(name, k.public_key().public_bytes(Encoding.PEM,
                                                PublicFormat.SubjectPublicKeyInfo).decode())
    key_signature = ctx.sign(managed, digest)
    write("public-key-hashedrekord.sigstore.json", make_bundle(
        v03, {"public_key": PublicKeyIdentifier(hint="managed key")},
        [ours.tsa.timestamp(key_signature)], [v1_entry("hashedrekord", "0.0.1", rekor.hashedrekord_body(
            digest, key_signature, managed.public_key().public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)))], digest=digest,
        signature=key_signature))
    key_envelope = sign_envelope(managed, statement.to_json())
    write("public-key-rekor-v2-dsse.sigstore.json", make_bundle(
        v03, {"public_key": PublicKeyIdentifier(hint="managed key")},
        [ours.tsa.timestamp(key_envelope.signatures[0].sig)], [v2.entry(
            "dsse", rekor_bodies.dsse_v002_body(
                key_envelope, rekor_bodies.public_key_verifier(managed.public_key())))],
        envelope=key_envelope))
    return trust


def _with_checkpoint(entry: TransparencyLogEntry, envelope: str) -> TransparencyLogEntry:
    assert entry.inclusion_proof is not None
    return dataclasses.replace(entry, inclusion_proof=dataclasses.replace(
        entry.inclusion_proof, checkpoint=Checkpoint(envelope=envelope)))

