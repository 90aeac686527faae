"""What users do: sign, verify, revoke. Shared by the CLI and the GitHub action."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key

from signer import bundle, dsse, registry, trust
from signer.artifact import ArtifactRef
from signer.client import Client
from signer.errors import UsageError, VerificationFailed
from signer.key_details import PublicKeyTypes
from signer.verification import (
    EntryResult,
    Policy,
    Report,
    Revocation,
    Verifier,
    VerifyOptions,
    from_flags,
    verify_entries,
)


@dataclass(frozen=True)
class Signed:
    id: str
    ref: ArtifactRef
    certificate_pem: str
    bundle_json: str
    bundle_path: Path
    identity: str
    issuer: str
    provenance: dict[str, str]
    signed_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": str(self.ref), "digest": f"sha256:{self.ref.digest}",
            "certificate": self.certificate_pem, "bundle": _json(self.bundle_json),
            "bundle_path": str(self.bundle_path), "identity": self.identity,
            "issuer": self.issuer, "provenance": self.provenance, "signed_at": self.signed_at,
        }


def _json(text: str) -> Any:
    return json.loads(text)


def sign(client: Client, namespace: str, ref: ArtifactRef, declared: Mapping[str, str | None],
         bundle_path: Path | None = None) -> Signed:
    """Fresh key → CSR and signature over the digest → one request → stored, timestamped
    entry (the certificate comes back in the bundle).

    The private key lives only in this function's memory.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    signature = key.sign(ref.digest_bytes, ec.ECDSA(Prehashed(hashes.SHA256())))
    stored = client.sign(namespace, str(ref), csr.public_bytes(Encoding.PEM).decode(),
                         base64.b64encode(signature).decode(),
                         {k: v for k, v in declared.items() if v})
    artifact = bundle.parse(_dumps(stored["bundle"]), "the service's bundle")
    bundle_json = artifact.to_json()
    leaf_pem = artifact.certificate.public_bytes(Encoding.PEM).decode()
    path = bundle_path or Path(ref.safe_filename)
    path.write_text(bundle_json + "\n")
    return Signed(stored["id"], ref, leaf_pem, bundle_json, path, stored["identity"],
                  stored["issuer"], stored["provenance"], stored["signed_at"])


@dataclass(frozen=True)
class Attested:
    id: str
    ref: ArtifactRef
    predicate_type: str
    statement: dict[str, Any]
    bundle_json: str
    bundle_path: Path
    identity: str
    issuer: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": str(self.ref), "digest": f"sha256:{self.ref.digest}",
                "predicate_type": self.predicate_type, "statement": self.statement,
                "bundle_path": str(self.bundle_path), "identity": self.identity,
                "issuer": self.issuer}


def attest(client: Client, namespace: str, ref: ArtifactRef, predicate_type: str | None,
           predicate: Mapping[str, Any] | None, bundle_path: Path | None = None) -> Attested:
    """Fresh key → certificate → in-toto statement in a DSSE envelope → stored attestation.

    Without a predicate, the service's SLSA provenance for the caller's token (it refuses
    any other SLSA v1 predicate, so this is the one way to get it).
    """
    if predicate is None:
        built = client.provenance(namespace)
        predicate_type, predicate = built["predicate_type"], built["predicate"]
    elif not predicate_type:
        raise UsageError("--predicate needs --predicate-type.",
                         "Name the predicate's type, e.g. https://spdx.dev/Document.")
    assert predicate_type is not None
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    issued = client.issue_certificate(namespace, csr.public_bytes(Encoding.PEM).decode(), {})
    leaf_pem = issued["certificate_chain"][0]
    statement = dsse.Statement.about(ref.name, ref.digest_bytes, predicate_type, predicate)
    envelope = dsse.sign_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, statement.to_json(),
                                  _EcdsaSigner(key))
    stored = client.submit_attestation(namespace, str(ref), leaf_pem, envelope.to_json())
    bundle_json = _dumps(stored["bundle"])
    path = bundle_path or Path(ref.safe_filename.removesuffix(".sigstore.json")
                               + ".intoto.sigstore.json")
    path.write_text(bundle_json + "\n")
    return Attested(stored["id"], ref, predicate_type, statement.to_dict(), bundle_json, path,
                    stored["identity"], stored["issuer"])


@dataclass(frozen=True)
class _EcdsaSigner:
    key: ec.EllipticCurvePrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def read_predicate(path: Path) -> dict[str, Any]:
    """A predicate file: one JSON object (an SBOM, a test report, …)."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"Cannot read the predicate {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise UsageError(f"The predicate {path} is not JSON: {exc}.",
                         "Pass a JSON document, e.g. an SPDX or CycloneDX SBOM.") from exc
    if not isinstance(data, dict):
        raise UsageError(f"The predicate {path} is not a JSON object.",
                         "An in-toto predicate is a JSON object.")
    return data


def _dumps(value: Any) -> str:
    return json.dumps(value)


def load_trust(client: Client | None, trust_root: Path | None) -> trust.TrustMaterial:
    """The pinned trust root; fetching it from the service is said out loud."""
    if trust_root is not None:
        return trust.read(trust_root)
    if client is None:
        raise UsageError("Offline verification needs --trust-root.",
                         "Export it once with 'signer trust-root export' and pin it.")
    print(f"note: trust root fetched from {client.api}; pin it with --trust-root for "
          "independent verification", file=sys.stderr)
    return trust.parse(client.trust_root(), f"{client.api}/v1/trust-root")


def verify(
    ref: ArtifactRef,
    trust_material: trust.TrustMaterial,
    issuer: str | None,
    identity: str | None = None,
    identity_regexp: str | None = None,
    provenance: Mapping[str, str | None] | None = None,
    client: Client | None = None,
    namespace: str | None = None,
    bundle_path: Path | None = None,
    *,
    key_path: Path | None = None,
    predicate_type: str | None = None,
    file: Path | None = None,
) -> Report:
    """Online: every entry the service holds for the name; offline: one bundle file.

    ``key_path``: the managed key (PEM) a bundle without a certificate is signed with; no
    identity is checked then. ``predicate_type``: verify attestations (DSSE bundles) whose
    statement has this predicate type. ``file``: the artifact itself, so that an in-toto
    subject naming only its SHA-512 (npm's) matches too.
    """
    policy, options = _policy_and_options(issuer, identity, identity_regexp, provenance,
                                          key_path, predicate_type, file)
    verifier = Verifier.for_trust(trust_material)
    entries: list[tuple[str, bundle.SignedArtifact, Revocation | None]] = []
    if bundle_path is not None:
        entries.append((str(bundle_path), bundle.read(bundle_path), None))
        return verify_entries(verifier, entries, ref.digest_bytes, policy,
                              revocation_checked=False, options=options)
    if client is None or not namespace:
        raise UsageError("Online verification needs --api and --namespace.",
                         "Or verify offline with --bundle and --trust-root.")
    # Attestations are stored apart from signatures: the gate asks for the kind it checks.
    views = (client.attestations(namespace, str(ref), predicate_type) if predicate_type
             else client.entries(namespace, str(ref)))
    for view in views:
        revocation = None
        if view.get("revocation"):
            r = view["revocation"]
            revocation = Revocation(r["reason"], r["revoked_by"],
                                    datetime.fromisoformat(r["revoked_at"]), r.get("log_index"))
        entries.append((view["id"], bundle.parse(_dumps(view["bundle"]), view["id"]),
                        revocation))
    return verify_entries(verifier, entries, ref.digest_bytes, policy, revocation_checked=True,
                          options=options)


# -- registries -------------------------------------------------------------------------------
def push_to_registry(ref: ArtifactRef, bundle_json: str | bytes,
                     predicate_type: str | None = None, allow_insecure: bool | None = None
                     ) -> registry.Pushed:
    """Attach a bundle (a signature, or an attestation with its predicate type) to the image
    ``ref`` names, in that image's repository."""
    client = registry.RegistryClient(registry.image_ref(ref), push=True,
                                     allow_insecure=allow_insecure)
    data = bundle_json.encode() if isinstance(bundle_json, str) else bundle_json
    return registry.push_bundle(client, data, predicate_type)


def push_made(made: Signed | Attested, allow_insecure: bool | None = None) -> registry.Pushed:
    """Attach what was just signed or attested to its image (an attestation with its
    predicate type, which deploy-time checks select by)."""
    predicate_type = made.predicate_type if isinstance(made, Attested) else None
    return push_to_registry(made.ref, made.bundle_json, predicate_type, allow_insecure)


def push_command(made: Signed | Attested) -> str:
    """The command that attaches ``made``'s bundle again without signing again."""
    extra = f" --predicate-type {made.predicate_type}" if isinstance(made, Attested) else ""
    return f"signer artifact push --name {made.ref} --bundle {made.bundle_path}{extra}"


def registry_referrers(ref: ArtifactRef, allow_insecure: bool | None = None,
                       fetch_bundles: bool = False) -> registry.Referrers:
    """What refers to the image in its registry (bundles read when ``fetch_bundles``)."""
    client = registry.RegistryClient(registry.image_ref(ref), allow_insecure=allow_insecure)
    return registry.referrers(client, fetch_bundles)


def verify_from_registry(
    ref: ArtifactRef,
    trust_material: trust.TrustMaterial,
    issuer: str | None,
    identity: str | None = None,
    identity_regexp: str | None = None,
    provenance: Mapping[str, str | None] | None = None,
    allow_insecure: bool | None = None,
    *,
    key_path: Path | None = None,
    predicate_type: str | None = None,
    file: Path | None = None,
) -> Report:
    """Every Sigstore bundle referring to the image, each verified offline as ``--bundle``
    would be; one that cannot be read or parsed is reported as not verified, with why."""
    policy, options = _policy_and_options(issuer, identity, identity_regexp, provenance,
                                          key_path, predicate_type, file)
    verifier = Verifier.for_trust(trust_material)
    found = registry_referrers(ref, allow_insecure, fetch_bundles=True)
    image = registry.image_ref(ref)
    unread: list[EntryResult] = []
    entries: list[tuple[str, bundle.SignedArtifact, Revocation | None]] = []
    for item in found.attached:
        if not item.is_bundle:
            continue
        entry_id = f"{image.registry}/{image.repository}@{item.digest}"
        if item.bundle is None:
            unread.append(EntryResult(entry_id, error=f"not verified: {item.error}"))
            continue
        try:
            entries.append((entry_id, bundle.parse(item.bundle, entry_id), None))
        except UsageError as exc:
            unread.append(EntryResult(entry_id, error=f"not verified: {exc.detail}"))
    if not entries and not unread:
        raise VerificationFailed(
            f"No Sigstore bundle refers to {image} (looked in its {found.index}).",
            "Sign with 'signer artifact sign --name … --push' (action: push_to_registry: "
            "true), or verify a bundle file with --bundle.")
    report = verify_entries(verifier, entries, ref.digest_bytes, policy,
                            revocation_checked=False, options=options)
    return Report(tuple(unread) + report.results, revocation_checked=False,
                  notes=(f"bundles read from {image.registry}/{image.repository} "
                         f"({found.index})",))


def _policy_and_options(
    issuer: str | None, identity: str | None, identity_regexp: str | None,
    provenance: Mapping[str, str | None] | None, key_path: Path | None,
    predicate_type: str | None, file: Path | None,
) -> tuple[Policy | None, VerifyOptions]:
    """The identity policy (none with a managed key) and the verifier's options."""
    key = load_key(key_path) if key_path is not None else None
    if key is None:
        policy: Policy | None = from_flags(issuer, identity, identity_regexp, provenance)
    elif issuer or identity or identity_regexp or any((provenance or {}).values()):
        raise UsageError("--key verifies a bundle signed with a managed key: it has no "
                         "certificate, so no identity or provenance to check.",
                         "Drop the identity and provenance flags, or drop --key.")
    else:
        policy = None
    return policy, VerifyOptions(predicate_type, key, _other_digests(file))


def load_key(path: Path) -> PublicKeyTypes:
    """A managed key's public half, PEM (SubjectPublicKeyInfo)."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"Cannot read the key {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise UsageError(f"{path} is not a PEM public key.",
                         "Pass the public key as '-----BEGIN PUBLIC KEY-----' PEM.") from exc
    if not isinstance(key, PublicKeyTypes):
        raise UsageError(f"{path} holds a {type(key).__name__}, not an ECDSA, Ed25519 or RSA "
                         "key.")
    return key


def _other_digests(file: Path | None) -> dict[str, bytes]:
    if file is None:
        return {}
    digest = hashlib.sha512()
    try:
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"Cannot read {file}: {exc.strerror}.") from exc
    return {"sha512": digest.digest()}
