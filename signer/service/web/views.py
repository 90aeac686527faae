"""What the templates show, built from the store's records and the bundle; no HTML here.

Labels and groups of provenance fields come from signer.provenance.FIELDS, the one table
the encoder, the decoder and the verifier also read. The certificate and the RFC 3161
timestamp are read from the stored Sigstore bundle, as a verifier would read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client import decode_timestamp_response

from signer import bundle as bundles
from signer import slsa
from signer.artifact import ArtifactRef
from signer.errors import SignerError
from signer.provenance import FIELDS, Field, Provenance
from signer.service.store import AttestationRecord, SignatureRecord
from signer.sigstore_json import Bundle, TransparencyLogEntry, WireError
from signer.verification.transparency import V2_KINDS

SHORT_DIGEST_HEX = 12
GROUP_TITLES = {"identity": "Identity", "build": "Build configuration",
                "source": "Source configuration", "service": "Recorded by the service"}


# The page reads the database, it does not verify: a signature nobody revoked is shown as
# "not revoked", never as "valid" (only `signer artifact verify` can say that).
NOT_REVOKED = "not revoked"


def status(signature_count: int, revoked_count: int) -> str:
    if revoked_count <= 0:
        return NOT_REVOKED
    return "revoked" if revoked_count >= signature_count else "mixed"


def short_digest(digest_hex: str) -> str:
    return f"sha256:{digest_hex[:SHORT_DIGEST_HEX]}…"


def link(value: str | None) -> str | None:
    """A value that is a web URL may be a link; anything else (javascript:, …) never is."""
    if value and urlsplit(value).scheme in ("https", "http"):
        return value
    return None


@dataclass(frozen=True)
class ArtifactName:
    """Metadata read from the name: ``registry/repository`` for an image, else a file."""

    name: str
    registry: str | None
    repository: str

    @classmethod
    def parse(cls, name: str) -> ArtifactName:
        # Docker's rule: the first path segment is a registry when it has a dot or a port,
        # or is localhost; otherwise the name is a repository (or a file name).
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return cls(name, first, rest)
        return cls(name, None, name)


@dataclass(frozen=True)
class ProvenanceRow:
    key: str
    label: str
    value: str | None
    href: str | None
    source: str  # token, declared, or service


@dataclass(frozen=True)
class ProvenanceGroup:
    name: str
    title: str
    rows: list[ProvenanceRow]


def _source_of(field: Field, provenance: Provenance) -> str:
    if field.group == "service":
        return "service"
    # With an API key the issuer is the service's own (docs/design.md, "Identity and
    # authorization"): the holder declares the build and source fields, not the issuer.
    if field.key == "issuer" and provenance.provenance_source == "declared":
        return "service"
    return provenance.provenance_source or "declared"


def provenance_groups(provenance: Provenance, groups: tuple[str, ...] = (
        "identity", "build", "source", "service")) -> list[ProvenanceGroup]:
    """Every field of the table, set or not, in table order, grouped as the table groups."""
    result = []
    for group in groups:
        rows = []
        for field in FIELDS:
            if field.group != group:
                continue
            value = getattr(provenance, field.key)
            rows.append(ProvenanceRow(field.key, field.label, value,
                                      link(value) if field.key.endswith("_uri")
                                      or field.form == "uri" else None,
                                      _source_of(field, provenance)))
        result.append(ProvenanceGroup(group, GROUP_TITLES[group], rows))
    return result


@dataclass(frozen=True)
class CertificateView:
    serial: str
    not_before: datetime
    not_after: datetime
    lifetime_minutes: float
    # Every URI SAN: a github-kind leaf names the job's workflow, then the token's subject.
    subject_alternative_names: tuple[str, ...]
    issuer: str
    pem: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertificateView:
        try:
            san = tuple(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                        .value.get_values_for_type(x509.UniformResourceIdentifier))
        except x509.ExtensionNotFound:
            san = ()
        serial = format(cert.serial_number, "x")
        serial = serial.zfill(len(serial) + len(serial) % 2)
        return cls(
            serial=":".join(serial[i:i + 2] for i in range(0, len(serial), 2)),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            lifetime_minutes=(cert.not_valid_after_utc
                              - cert.not_valid_before_utc).total_seconds() / 60,
            subject_alternative_names=san, issuer=cert.issuer.rfc4514_string(),
            pem=cert.public_bytes(Encoding.PEM).decode(),
        )


@dataclass(frozen=True)
class TimestampView:
    time: datetime | None
    authority: str | None
    serial: str | None
    policy: str | None
    accuracy: str | None
    problem: str | None = None

    @classmethod
    def of(cls, der: bytes) -> TimestampView:
        try:
            response = decode_timestamp_response(der)
            info = response.tst_info
            signers = list(response.signed_data.signer_infos)
            authority = _tsa_name(response.signed_data.certificates,
                                  signers[0].serial_number if signers else None)
            if authority is None and signers:
                authority = signers[0].issuer.rfc4514_string()
            return cls(time=info.gen_time, authority=authority,
                       serial=format(info.serial_number, "x"),
                       policy=info.policy.dotted_string, accuracy=_accuracy(info))
        except (ValueError, TypeError, AttributeError) as exc:
            return cls(None, None, None, None, None,
                       problem=f"The timestamp token could not be read: {exc}")


def _tsa_name(certificates: set[bytes], serial: int | None) -> str | None:
    for der in certificates:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if serial is None or cert.serial_number == serial:
            return cert.subject.rfc4514_string()
    return None


def _accuracy(info: Any) -> str | None:
    try:
        accuracy = info.accuracy
    except (ValueError, AttributeError):
        return None
    if accuracy is None:
        return None
    parts = [f"{accuracy.seconds} s" if accuracy.seconds else "",
             f"{accuracy.millis} ms" if accuracy.millis else "",
             f"{accuracy.micros} µs" if accuracy.micros else ""]
    return " ".join(p for p in parts if p) or None


@dataclass(frozen=True)
class LogEntryView:
    log: str  # which log: both count from 0, so an index alone names no entry
    log_index: int
    integrated_time: datetime | None

    @classmethod
    def of(cls, entry: TransparencyLogEntry) -> LogEntryView:
        kind = (entry.kind_version.kind, entry.kind_version.version)
        api = "Rekor v2" if kind in V2_KINDS else "Rekor v1"
        return cls(f"{api} · {kind[0]} {kind[1]}", int(entry.log_index),
                   _epoch(entry.integrated_time))


@dataclass(frozen=True)
class SignatureDetails:
    id: str
    ref: ArtifactRef
    artifact_id: str
    identity: str
    issuer: str
    signed_at: datetime
    status: str
    provenance_source: str
    groups: list[ProvenanceGroup]
    certificate: CertificateView | None
    timestamps: list[TimestampView]
    log_entries: list[LogEntryView]
    revocation: dict[str, Any] | None
    bundle_filename: str
    problem: str | None = None


def signature_details(row: SignatureRecord) -> SignatureDetails:
    ref = ArtifactRef(row.name, row.digest)
    revocation = ({"reason": row.revocation.reason, "revoked_by": row.revocation.revoked_by,
                   "revoked_at": row.revocation.revoked_at} if row.revocation else None)
    problem = None
    certificate, timestamps, entries = None, [], []
    try:
        signed = bundles.parse(row.bundle, "the stored bundle")
        provenance = Provenance.from_certificate(signed.certificate)
        certificate = CertificateView.of(signed.certificate)
        timestamps = [TimestampView.of(t) for t in signed.timestamps]
        entries = [LogEntryView.of(e) for e in signed.tlog_entries]
    except SignerError as exc:
        # Show what the database recorded, and say the bundle itself could not be read.
        problem = exc.detail
        provenance = Provenance.from_dict(row.provenance)
    return SignatureDetails(
        id=row.id, ref=ref, artifact_id=row.artifact_id, identity=row.identity,
        issuer=row.issuer, signed_at=row.signed_at,
        status="revoked" if row.revoked else NOT_REVOKED,
        provenance_source=provenance.provenance_source or "declared",
        groups=provenance_groups(provenance), certificate=certificate, timestamps=timestamps,
        log_entries=entries, revocation=revocation, bundle_filename=ref.safe_filename,
        problem=problem,
    )


def _epoch(value: Any) -> datetime | None:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


@dataclass(frozen=True)
class SignatureSummary:
    id: str
    identity: str
    signed_at: datetime
    source_repository_ref: str | None
    provenance_source: str
    status: str
    revocation_reason: str | None


def signature_summary(row: SignatureRecord) -> SignatureSummary:
    return SignatureSummary(
        id=row.id, identity=row.identity, signed_at=row.signed_at,
        source_repository_ref=row.source_repository_ref,
        provenance_source=str(row.provenance.get("provenance_source") or "declared"),
        status="revoked" if row.revoked else NOT_REVOKED,
        revocation_reason=row.revocation.reason if row.revocation else None)


def latest_provenance(rows: list[SignatureRecord]) -> Provenance:
    """The newest signature's provenance (rows come newest first), as the database has it."""
    if not rows:
        return Provenance()
    return Provenance.from_dict(rows[0].provenance)


# -- attestations ------------------------------------------------------------------------------
# A statement is shown as formatted JSON up to this size; an SBOM of megabytes is cut (the
# whole one is in the bundle download).
MAX_STATEMENT_SHOWN = 256 * 1024


@dataclass(frozen=True)
class AttestationSummary:
    id: str
    predicate_type: str
    identity: str
    signed_at: datetime
    source_repository_ref: str | None
    status: str
    revocation_reason: str | None


def attestation_summary(row: AttestationRecord) -> AttestationSummary:
    return AttestationSummary(
        id=row.id, predicate_type=row.predicate_type, identity=row.identity,
        signed_at=row.signed_at, source_repository_ref=row.source_repository_ref,
        status="revoked" if row.revoked else NOT_REVOKED,
        revocation_reason=row.revocation.reason if row.revocation else None)


@dataclass(frozen=True)
class AttestationDetails:
    id: str
    ref: ArtifactRef
    artifact_id: str
    predicate_type: str
    identity: str
    issuer: str
    signed_at: datetime
    status: str
    revocation: dict[str, Any] | None
    slsa_fields: list[tuple[str, str]]  # SLSA provenance as readable fields; else empty
    statement_json: str  # the statement, formatted (cut at MAX_STATEMENT_SHOWN)
    statement_cut: bool
    certificate: CertificateView | None
    timestamps: list[TimestampView]
    log_entries: list[LogEntryView]
    bundle_filename: str
    problem: str | None = None


def attestation_details(row: AttestationRecord) -> AttestationDetails:
    ref = ArtifactRef(row.name, row.digest)
    revocation = ({"reason": row.revocation.reason, "revoked_by": row.revocation.revoked_by,
                   "revoked_at": row.revocation.revoked_at} if row.revocation else None)
    problem, certificate, timestamps, entries = None, None, [], []
    statement: dict[str, Any] = {}
    try:
        model = Bundle.from_json(row.bundle)
        material = model.verification_material
        if material.certificate is not None:
            certificate = CertificateView.of(
                x509.load_der_x509_certificate(material.certificate.raw_bytes))
        tsd = material.timestamp_verification_data
        timestamps = [TimestampView.of(t.signed_timestamp)
                      for t in (tsd.rfc3161_timestamps if tsd else ())]
        entries = [LogEntryView.of(e) for e in material.tlog_entries]
        if model.dsse_envelope is not None:
            statement = json.loads(model.dsse_envelope.payload)
    except (WireError, ValueError) as exc:
        problem = f"The stored bundle cannot be read: {exc}."
    text = json.dumps(statement, indent=2, ensure_ascii=False)
    predicate = statement.get("predicate")
    fields = (slsa_fields(predicate) if row.predicate_type == slsa.PREDICATE_TYPE
              and isinstance(predicate, dict) else [])
    return AttestationDetails(
        id=row.id, ref=ref, artifact_id=row.artifact_id, predicate_type=row.predicate_type,
        identity=row.identity, issuer=row.issuer, signed_at=row.signed_at,
        status="revoked" if row.revoked else NOT_REVOKED, revocation=revocation,
        slsa_fields=fields, statement_json=text[:MAX_STATEMENT_SHOWN],
        statement_cut=len(text) > MAX_STATEMENT_SHOWN, certificate=certificate,
        timestamps=timestamps, log_entries=entries,
        bundle_filename=attestation_filename(ref), problem=problem)


def attestation_filename(ref: ArtifactRef) -> str:
    """As the CLI names it: ``<name-safe>.intoto.sigstore.json``."""
    return ref.safe_filename.removesuffix(".sigstore.json") + ".intoto.sigstore.json"


def slsa_fields(predicate: dict[str, Any]) -> list[tuple[str, str]]:
    """SLSA provenance v1 as label/value rows: build type, builder, invocation, parameters
    (flattened, ``workflow.ref``), each resolved dependency with its digests."""
    definition = predicate.get("buildDefinition") or {}
    run = predicate.get("runDetails") or {}
    rows = [("Build type", str(definition.get("buildType", ""))),
            ("Builder", str((run.get("builder") or {}).get("id", ""))),
            ("Invocation", str((run.get("metadata") or {}).get("invocationId", "")))]
    for title, key in (("External parameter", "externalParameters"),
                       ("Internal parameter", "internalParameters")):
        rows += [(f"{title} {name}", value) for name, value in _flat(definition.get(key))]
    for dependency in definition.get("resolvedDependencies") or []:
        if isinstance(dependency, dict):
            digests = ", ".join(f"{k}:{v}" for k, v in (dependency.get("digest") or {}).items())
            rows.append(("Resolved dependency",
                         " @ ".join(p for p in (str(dependency.get("uri", "")), digests) if p)))
    return [(label, value) for label, value in rows if value]


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flat(v, f"{prefix}{k}.")]
    if value is None or prefix == "":
        return []
    text = value if isinstance(value, str) else json.dumps(value)
    return [(prefix.rstrip("."), text)]
