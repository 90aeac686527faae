"""Regenerate the verifier's assets: one signing made by the service's own code, and its breakages.

Run from the repository root: ``.venv/bin/python tests/assets/make_verification_assets.py``.
In-process, no service: the CA, TSA, transparency log (SQLite in a temporary directory),
CT log and bundle modules of ``signer.service`` make a complete bundle and the trust root
that pins them; each broken bundle changes one thing, made with the same code, so that it
fails at exactly one step. The keys are derived from fixed seeds (the same trust material
keys on every run); ECDSA signatures and serial numbers are random, so the files differ from
run to run. Every check of a bundle is made at its signing time, and the root lives 10 years,
so the assets keep verifying. No private key is written here.

``verification.meta.json`` says what the good bundle signs and who signed it; the
``trusted_root-*`` files are the good trust root with one authority changed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Where the files go: here, unless a test asks for another directory.
OUT = Path(os.environ.get("SIGNER_ASSETS_OUT") or HERE)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from signer import bundle as bundles  # noqa: E402
from signer.issuers import resolve  # noqa: E402
from signer.service import ca as cas  # noqa: E402
from signer.service.database import create_engine, migrate  # noqa: E402
from signer.service.keys import FileKey, KeySigner, sign_certificate  # noqa: E402
from signer.service.log import LogItem, Sequenced  # noqa: E402
from signer.service.log.rfc6962 import Rfc6962Log  # noqa: E402
from signer.service.tsa import TimestampAuthority  # noqa: E402
from signer.transparency import rekor, sct  # noqa: E402
from signer.transparency.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from signer.trust import Authority, TrustMaterial, log_instance  # noqa: E402

ISSUER = "https://token.actions.githubusercontent.com"
NAMESPACE = "acme"
ISSUER_KIND = resolve(ISSUER, {})
CLAIMS = {
    "iss": ISSUER, "aud": "signer", "sub": "repo:acme/app:ref:refs/tags/v1.2.3",
    "repository": "acme/app", "repository_owner": "acme", "repository_id": "101",
    "repository_owner_id": "202", "ref": "refs/tags/v1.2.3", "ref_type": "tag",
    "sha": "a" * 40, "workflow": "release", "workflow_ref":
        "acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
    "workflow_sha": "a" * 40, "job_workflow_ref":
        "acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
    "job_workflow_sha": "a" * 40, "event_name": "push", "run_id": "7", "run_attempt": "1",
    "runner_environment": "github-hosted",
}
ARTIFACT = b"the artifact the good bundle signs\n"
OTHER_ARTIFACT = b"another artifact\n"
TLOG_URL = "https://signer.assets.example"
CTLOG_URL = "https://signer.assets.example/ct"


def key(seed: str) -> ec.EllipticCurvePrivateKey:
    """A fixed P-256 key: the same trust material keys on every run."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    value = int.from_bytes(hashlib.sha256(f"signer test asset {seed}".encode()).digest()) % n
    return ec.derive_private_key(value or 1, ec.SECP256R1())


def write(name: str, data: str) -> None:
    (OUT / name).write_text(data)
    print(f"wrote {OUT / name}")


@dataclasses.dataclass
class Hierarchy:
    """A root, its intermediate CA and TSA, as ``signer server init`` makes them."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    ca: cas.CertificateAuthority
    tsa_cert: x509.Certificate
    tsa: TimestampAuthority

    @classmethod
    def make(cls, name: str) -> Hierarchy:
        root_key, inter_key, tsa_key = key(f"{name} root"), key(f"{name} ca"), key(f"{name} tsa")
        root_signer = FileKey(root_key)
        root = cas.create_root(root_signer)
        inter = cas.create_intermediate(inter_key.public_key(), root_signer, root)
        tsa_cert = cas.create_tsa_certificate(tsa_key.public_key(), root_signer, root)
        return cls(root_key, root, cas.CertificateAuthority(FileKey(inter_key), inter, root),
                   tsa_cert, TimestampAuthority(FileKey(tsa_key), [tsa_cert, root]))


class Logs:
    """The service's tlog and CT log, on SQLite in ``directory``."""

    def __init__(self, directory: Path) -> None:
        engine = create_engine(f"sqlite:///{directory / 'signer.db'}")
        migrate(engine)
        self.tlog = Rfc6962Log("tlog", engine, FileKey(key("tlog")), TLOG_URL, signs_entries=True)
        self.ctlog = Rfc6962Log("ctlog", engine, FileKey(key("ctlog")), CTLOG_URL,
                                     signs_entries=False)
        self.tlog.create()
        self.ctlog.create()

    def entry(self, body: bytes, kind: str = rekor.HASHEDREKORD_KIND,
              version: str = rekor.HASHEDREKORD_VERSION) -> Any:
        """Log a body (hashedrekord unless told); the bundle's entry for it."""
        def write(_tx: Any, entry: Sequenced) -> Any:
            return bundles.tlog_entry(
                kind=kind, version=version,
                log_id=self.tlog.log_id, index=entry.index,
                integrated_time=entry.integrated_time, body=entry.body,
                promise=entry.signed_entry_timestamp, root_hash=entry.root_hash,
                tree_size=entry.tree_size, proof=entry.proof, checkpoint=entry.checkpoint)
        return self.tlog.append(LogItem(kind=kind, version=version, body=body,
                                        namespace=NAMESPACE, write=write))


def sct_source(ct_key: KeySigner, issuer: x509.Certificate, extensions: bytes = b""
               ) -> Callable[[cas.Precertificate], bytes]:
    def source(precert: cas.Precertificate) -> bytes:
        return sct.sign_precert_sct(ct_key, int(time.time() * 1000), sct.issuer_key_hash(issuer),
                                    precert.tbs, extensions)
    return source


def csr(leaf_key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    return x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        leaf_key, hashes.SHA256())


def issue(h: Hierarchy, leaf_key: ec.EllipticCurvePrivateKey,
          ct_key: KeySigner | None, sct_extensions: bytes = b"") -> x509.Certificate:
    """A leaf as the service issues it (with an SCT from ``ct_key``, or none)."""
    provenance = ISSUER_KIND.provenance(CLAIMS, NAMESPACE)
    return h.ca.issue(csr(leaf_key), str(CLAIMS["sub"]), provenance.extensions(CLAIMS),
                      sct_source=sct_source(ct_key, h.ca.certificate, sct_extensions)
                      if ct_key else None)


def issue_off_profile(h: Hierarchy, leaf_key: ec.EllipticCurvePrivateKey,
                      ct_key: KeySigner, key_usage: bool,
                      eku: x509.ObjectIdentifier) -> x509.Certificate:
    """A leaf the CA would never issue (no KeyUsage, or another EKU), signed by its key,
    with an SCT: everything else as the CA's profile has it, so only step 4 can refuse it."""
    now = datetime.now(UTC).replace(microsecond=0)
    pub = leaf_key.public_key()
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([]))
        .issuer_name(h.ca.certificate.subject).public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + cas.CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if key_usage:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
    ski = h.ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(str(CLAIMS["sub"]))]), critical=True))
    for ext in ISSUER_KIND.provenance(CLAIMS, NAMESPACE).extensions(CLAIMS):
        builder = builder.add_extension(ext, critical=False)
    precert = sign_certificate(builder.add_extension(x509.PrecertPoison(), critical=True),
                               h.ca.signer)
    sct_list = x509.UnrecognizedExtension(
        sct.SCT_LIST_OID,
        sct.sct_list_extension_value([sct_source(ct_key, h.ca.certificate)(cas.Precertificate(
            precert.public_bytes(Encoding.DER), sct.precertificate_tbs(precert)))]))
    return sign_certificate(builder.add_extension(sct_list, critical=False), h.ca.signer)


def sign(leaf_key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    return leaf_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def signed_bundle(h: Hierarchy, logs: Logs, cert: x509.Certificate, digest: bytes,
                  signature: bytes, tsa: TimestampAuthority | None = None) -> bundles.SignedArtifact:
    """Timestamp, log and bundle a signature, as ``POST /v1/signatures`` does."""
    timestamp = (tsa or h.tsa).timestamp(signature)
    body = rekor.hashedrekord_body(digest, signature, cert.public_bytes(Encoding.PEM))
    return bundles.build(cert, digest, signature, timestamp, [logs.entry(body)])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pretty(artifact: bundles.SignedArtifact) -> str:
    return json.dumps(json.loads(artifact.to_json()), indent=2) + "\n"


def edited(artifact: bundles.SignedArtifact, edit: Callable[[dict[str, Any]], None]) -> str:
    """The bundle's JSON with one field changed."""
    data = json.loads(artifact.to_json())
    edit(data)
    return json.dumps(data, indent=2) + "\n"


def trust_json(material: TrustMaterial) -> str:
    return json.dumps(json.loads(material.to_json()), indent=2) + "\n"


def main() -> None:
    ours, foreign = Hierarchy.make("signer"), Hierarchy.make("foreign")
    digest, other_digest = hashlib.sha256(ARTIFACT).digest(), hashlib.sha256(OTHER_ARTIFACT).digest()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Logs(Path(tmp))
        ct_key = logs.ctlog.signer
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        trust = TrustMaterial(
            cas=(Authority((ours.ca.certificate, ours.root), start),),
            tsas=(Authority((ours.tsa_cert, ours.root), start),),
            tlogs=(log_instance(TLOG_URL, logs.tlog.signer.public_key, start),),
            ctlogs=(log_instance(CTLOG_URL, ct_key.public_key, start),))
        write("trusted_root-good.json", trust_json(trust))

        leaf_key = key("leaf")
        cert = issue(ours, leaf_key, ct_key)
        # Other signings first, so that the good bundle's inclusion proof has hashes.
        for n in range(5):
            filler = hashlib.sha256(b"earlier artifact %d" % n).digest()
            signed_bundle(ours, logs, cert, filler, sign(leaf_key, filler))
        signature = sign(leaf_key, digest)
        good = signed_bundle(ours, logs, cert, digest, signature)
        write("bundle-good.sigstore.json", pretty(good))
        write("verification.meta.json", json.dumps({
            "artifact": ARTIFACT.decode(), "digest": digest.hex(),
            "other_digest": other_digest.hex(), "issuer": ISSUER,
            "identity": CLAIMS["sub"], "source_repository_ref": CLAIMS["ref"],
            "namespace": NAMESPACE}, indent=2) + "\n")

        # (7) A signature the leaf's key did not make, timestamped and logged all the same.
        forged = sign(key("not the leaf"), digest)
        write("bundle-signature-not-by-leaf-key.sigstore.json",
              pretty(signed_bundle(ours, logs, cert, digest, forged)))
        # (4) Leaves the CA would not issue, under its key.
        no_ku_key = key("leaf without key usage")
        write("bundle-leaf-without-key-usage.sigstore.json", pretty(signed_bundle(
            ours, logs, issue_off_profile(ours, no_ku_key, ct_key, False,
                                          ExtendedKeyUsageOID.CODE_SIGNING),
            digest, sign(no_ku_key, digest))))
        client_key = key("leaf with clientAuth")
        write("bundle-leaf-eku-client-auth-only.sigstore.json", pretty(signed_bundle(
            ours, logs, issue_off_profile(ours, client_key, ct_key, True,
                                          ExtendedKeyUsageOID.CLIENT_AUTH),
            digest, sign(client_key, digest))))
        # (4) A leaf of our CA whose SCT list is not one: cryptography refuses to read its
        # extensions, an error the verifier does not expect, reported as the step's failure.
        garbled_key = key("leaf with a garbled sct list")
        garbled = x509.UnrecognizedExtension(sct.SCT_LIST_OID, b"\x04\x03\x00\x01\xff")
        provenance = ISSUER_KIND.provenance(CLAIMS, NAMESPACE)
        write("bundle-leaf-sct-list-garbled.sigstore.json", pretty(signed_bundle(
            ours, logs, ours.ca.issue(csr(garbled_key), str(CLAIMS["sub"]),
                                      [*provenance.extensions(CLAIMS), garbled]),
            digest, sign(garbled_key, digest))))
        # (3) A leaf of another root, timestamped and logged by ours.
        foreign_key = key("foreign leaf")
        write("bundle-leaf-from-foreign-root.sigstore.json", pretty(signed_bundle(
            ours, logs, issue(foreign, foreign_key, ct_key), digest,
            sign(foreign_key, digest))))
        # (2) Timestamps: over another signature, by an untrusted TSA.
        other_ts = ours.tsa.timestamp(sign(leaf_key, other_digest))
        write("bundle-timestamp-over-other-signature.sigstore.json", edited(good, lambda d: d[
            "verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0].update(
                signedTimestamp=b64(other_ts))))
        write("bundle-timestamp-by-untrusted-tsa.sigstore.json",
              pretty(signed_bundle(ours, logs, cert, digest, signature, tsa=foreign.tsa)))
        # (5) No SCT; an SCT from a CT log the trust root does not list.
        bare_key = key("leaf without sct")
        write("bundle-leaf-without-sct.sigstore.json", pretty(signed_bundle(
            ours, logs, issue(ours, bare_key, None), digest, sign(bare_key, digest))))
        unknown_ct_key = key("leaf with unknown sct")
        write("bundle-sct-from-unknown-ct-log.sigstore.json", pretty(signed_bundle(
            ours, logs, issue(ours, unknown_ct_key, FileKey(key("unknown ct log"))), digest,
            sign(unknown_ct_key, digest))))
        # (6) The log entry: another signature's, a tampered proof, a foreign checkpoint, no
        # promise.
        other_entry = json.loads(signed_bundle(
            ours, logs, cert, other_digest, sign(leaf_key, other_digest)).to_json()
        )["verificationMaterial"]["tlogEntries"][0]
        write("bundle-log-entry-of-another-signature.sigstore.json", edited(
            good, lambda d: d["verificationMaterial"].update(tlogEntries=[other_entry])))

        def tamper_proof(d: dict[str, Any]) -> None:
            proof = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
            first = bytearray(base64.b64decode(proof["hashes"][0]))
            first[0] ^= 1
            proof["hashes"][0] = b64(bytes(first))
        write("bundle-inclusion-proof-tampered.sigstore.json", edited(good, tamper_proof))
        envelope = good.tlog_entries[0].inclusion_proof.checkpoint
        assert envelope is not None
        body = envelope.envelope.split("\n\n")[0] + "\n"
        foreign_checkpoint = sign_checkpoint(Checkpoint.from_body(body),
                                             logs.tlog.signer_name, FileKey(key("another log")))
        write("bundle-checkpoint-signed-by-another-key.sigstore.json", edited(
            good, lambda d: d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"][
                "checkpoint"].update(envelope=foreign_checkpoint)))
        write("bundle-without-inclusion-promise.sigstore.json", edited(
            good, lambda d: d["verificationMaterial"]["tlogEntries"][0].pop(
                "inclusionPromise")))
        # (2) The TSA's validFor in the trust root begins after the good bundle's signing.
        signed_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        write("trusted_root-tsa-valid-only-after-signing.json", trust_json(dataclasses.replace(
            trust, tsas=(dataclasses.replace(trust.tsas[0], start=signed_at),))))
        # The corpus of issue 16: DSSE, Rekor v2, cosigned checkpoints, keys, chains.
        import make_corpus_assets
        make_corpus_assets.make(types.SimpleNamespace(
            HERE=OUT, ROOT=ROOT, ours=ours, logs=logs, trust=trust, digest=digest,
            start=start, key=key, issue=issue, sign=sign, trust_json=trust_json))


if __name__ == "__main__":
    main()
