"""The crypto ceiling: what one complete signing costs in cryptography alone, in-process.

The same operations the service runs for one signing, on the same library calls, with no
HTTP and no database: the OIDC token verified on each of the two requests, the CSR parsed
and its proof of possession checked, the leaf issued, the leaf checked against the CA when
it comes back, the signature over the digest verified, one RFC 3161 timestamp, and — where
``signer.transparency`` exists — one log entry (Rekor body, Merkle append, signed checkpoint,
inclusion promise); where the CA embeds SCTs, the leaf is issued as the service does it
(precertificate, SCT, certificate) and the CT log takes an entry too. The sum is the
service's CPU floor per signing on one core; its inverse is the ceiling the load benchmark
is compared with.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import inspect
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from bench.timing import per_call_seconds
from signer import issuers
from signer.service import ca as authority
from signer.service.auth import CLOCK_SKEW_SECONDS, REQUIRED_CLAIMS
from signer.service.keys import KeyFiles, KeySigner
from signer.service.tsa import TimestampAuthority

ISSUER = "https://token.actions.githubusercontent.com"
NAMESPACE = "bench"


@dataclass(frozen=True)
class Operation:
    name: str
    per_signing: int  # how many times one complete signing runs it
    seconds: float  # one call, median of rounds

    @property
    def cost(self) -> float:
        return self.per_signing * self.seconds


@dataclass(frozen=True)
class Ceiling:
    operations: tuple[Operation, ...]

    @property
    def seconds_per_signing(self) -> float:
        return sum(op.cost for op in self.operations)

    @property
    def per_core(self) -> float:
        """Signings per second one core could do if crypto were all the work."""
        return 1 / self.seconds_per_signing


def _claims() -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    repo, ref, sha = "acme/app", "refs/tags/v1.2.3", "2f0c9b6a3d1e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
    return {
        "iss": ISSUER, "aud": "signer", "sub": f"repo:{repo}:ref:{ref}", "ref": ref, "sha": sha,
        "repository": repo, "repository_owner": "acme", "run_id": "1", "run_attempt": "1",
        "runner_environment": "github-hosted", "workflow": "release", "event_name": "push",
        "workflow_ref": f"{repo}/.github/workflows/release.yml@{ref}", "workflow_sha": sha,
        "job_workflow_ref": f"{repo}/.github/workflows/release.yml@{ref}",
        "job_workflow_sha": sha, "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
    }


def measure(budget: float = 0.5) -> Ceiling:
    """Each operation for about ``budget`` seconds."""
    claims = _claims()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "bench"})
    rsa_public = rsa_key.public_key()

    root_key, intermediate_key, tsa_key = (generate_key() for _ in range(3))
    root = authority.create_root(root_key)
    intermediate = authority.create_intermediate(intermediate_key.public_key, root_key, root)
    ca = authority.CertificateAuthority(intermediate_key, intermediate, root)
    tsa = TimestampAuthority(tsa_key, [authority.create_tsa_certificate(
        tsa_key.public_key, root_key, root), root])

    client_key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        client_key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
    csr = authority.parse_csr(csr_pem)
    issuer = issuers.resolve(ISSUER, {})
    extensions = issuer.provenance(claims, NAMESPACE).extensions(issuer.legacy_claims(claims))
    leaf = ca.issue(csr, str(claims["sub"]), extensions)
    digest = hashlib.sha256(b"bench artifact").digest()
    signature = client_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    leaf_key = leaf.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)

    def verify_token() -> None:
        jwt.decode(token, rsa_public, algorithms=["RS256"], audience="signer", issuer=ISSUER,
                   leeway=CLOCK_SKEW_SECONDS, options={"require": REQUIRED_CLAIMS})

    def issue_leaf() -> object:
        return ca.issue(csr, str(claims["sub"]), extensions)

    issue_name = "leaf certificate issue (build + ECDSA sign)"
    ct = _ct_issue(ca, csr, str(claims["sub"]), extensions)
    if ct is not None:
        issue_leaf = ct
        issue_name = ("leaf issue with embedded SCT (precertificate, SCT, certificate: "
                      "3 ECDSA signs)")
    operations: list[tuple[str, int, Callable[[], object]]] = [
        ("OIDC token verify (RS256 JWT), on both requests", 2, verify_token),
        ("CSR parse + proof of possession", 1, lambda: authority.parse_csr(csr_pem)),
        (issue_name, 1, issue_leaf),
        ("leaf check: issued by our CA (ECDSA verify)", 1,
         lambda: leaf.verify_directly_issued_by(intermediate)),
        ("signature over the digest (ECDSA verify)", 1,
         lambda: leaf_key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))),
        ("RFC 3161 timestamp (TSTInfo + CMS + ECDSA sign)", 1, lambda: tsa.timestamp(signature)),
    ]
    log_entry = _log_entry(leaf, digest, signature)
    if log_entry is not None:
        operations.append(("transparency log entry (body, Merkle append, checkpoint, "
                           "promise), signature log", 1, log_entry))
        if ct is not None:
            operations.append(("CT log entry (Merkle append, checkpoint), certificate log", 1,
                               _log_entry(leaf, digest, signature, promise=False) or log_entry))
    return Ceiling(tuple(Operation(name, count, per_call_seconds(fn, budget))
                         for name, count, fn in operations))


def generate_key() -> KeySigner:
    """A key as the service has it: written to its file, then signing from memory."""
    with tempfile.TemporaryDirectory() as directory:
        return KeyFiles(Path(directory), None).generate("bench")


def _ct_issue(ca: authority.CertificateAuthority, csr: x509.CertificateSigningRequest,
              identity: str, extensions: list[x509.UnrecognizedExtension]
              ) -> Callable[[], object] | None:
    """Issuing with a CT log (precertificate → SCT → certificate), where the CA does it."""
    if "sct_source" not in inspect.signature(ca.issue).parameters:
        return None
    from signer.transparency import sct

    log_key = generate_key()
    key_hash = sct.issuer_key_hash(ca.certificate)

    def source(precert: authority.Precertificate) -> bytes:
        return sct.sign_precert_sct(log_key, 1_700_000_000_000, key_hash, precert.tbs)

    return lambda: ca.issue(csr, identity, extensions, sct_source=source)


def _log_entry(leaf: x509.Certificate, digest: bytes, signature: bytes, promise: bool = True
               ) -> Callable[[], object] | None:
    """One entry in an RFC 6962 log, as the sequencer writes it, if the primitives exist."""
    if importlib.util.find_spec("signer.transparency") is None:
        return None
    from signer.transparency import checkpoint, merkle, rekor, sct

    log_key = generate_key()
    log_id = sct.log_id(log_key.public_key)
    leaf_pem = leaf.public_bytes(Encoding.PEM)
    tree = merkle.MemoryNodes()
    # A log that already holds entries, so the append folds a realistic number of nodes.
    tree.append([hashlib.sha256(base64.b64encode(i.to_bytes(4, "big"))).digest()
                 for i in range(100_000)])

    def entry() -> object:
        body = rekor.hashedrekord_body(digest, signature, leaf_pem)
        index = tree.size
        tree.append([merkle.leaf_hash(body)])
        note = checkpoint.sign_checkpoint(
            checkpoint.Checkpoint("bench.example - 1", tree.size, tree.root()), "bench.example",
            log_key)
        if not promise:
            return note
        return note, rekor.signed_entry_timestamp(log_key, body, 1_700_000_000, log_id, index)

    return entry
