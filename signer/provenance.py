"""Build provenance: one typed record, one table of fields, the only place that knows OIDs.

The table below is read by the certificate encoder, the decoder, the verifier's policies,
the CLI flags and the web page alike (docs/design.md, "Certificate profile"). How each issuer
kind's claims fill the record is ``signer.issuers``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from signer.errors import UsageError

Claims = Mapping[str, Any]
Source = Literal["token", "declared"]

FULCIO_ARC = "1.3.6.1.4.1.57264.1"
# The project's own arc is its UUID. X.667 spells that 2.25.<the UUID as one integer>, but
# Go's x509 refuses an OID arc past 2^63 (RFC 5280 only asks parsers for 2^28), so gh,
# cosign, sigstore-go and policy-controller could not parse our leaves. We write the same
# UUID's ViaThinkSoft AltId instead (registered PEN 54392, method 3: eight 16-bit arcs), and
# still read the 2.25 form that certificates issued before the change carry.
PROJECT_UUID = uuid.UUID("86e7ffca-30c0-4ec1-bd69-ddd09568fa3c")
PROJECT_ARC = "1.3.6.1.4.1.54392.3." + ".".join(
    str(int.from_bytes(PROJECT_UUID.bytes[i : i + 2], "big")) for i in range(0, 16, 2))
PROJECT_ARC_X667 = f"2.25.{PROJECT_UUID.int}"
OUR_ARC = f"{PROJECT_ARC}.1"


def claim_text(value: Any) -> str | None:
    """A claim's value as certificate text; absent and empty are both None."""
    if value is None or value == "":
        return None
    return str(value)


@dataclass(frozen=True, slots=True)
class Field:
    """One provenance field: where it lives in a certificate, a token and the CLI."""

    key: str
    oid: str
    label: str
    flag: str | None
    # "uri" fields hold a URL; users may compare them in their short form (org/repo).
    form: Literal["text", "uri"] = "text"
    group: Literal["identity", "build", "source", "service"] = "build"


FIELDS: tuple[Field, ...] = (
    Field("issuer", f"{FULCIO_ARC}.8", "OIDC issuer", "certificate-oidc-issuer",
          group="identity"),
    Field("build_signer_uri", f"{FULCIO_ARC}.9", "Build signer URI", None),
    Field("build_signer_digest", f"{FULCIO_ARC}.10", "Build signer digest", None),
    Field("runner_environment", f"{FULCIO_ARC}.11", "Runner environment", "runner-environment"),
    Field("source_repository", f"{FULCIO_ARC}.12", "Source repository", "source-repository",
          form="uri", group="source"),
    Field("source_repository_digest", f"{FULCIO_ARC}.13", "Source repository digest",
          "source-repository-digest", group="source"),
    Field("source_repository_ref", f"{FULCIO_ARC}.14", "Source repository ref",
          "source-repository-ref", group="source"),
    # Identifiers (.15, .17) survive a rename of the repository or its owner.
    Field("source_repository_identifier", f"{FULCIO_ARC}.15", "Source repository identifier",
          None, group="source"),
    Field("source_repository_owner", f"{FULCIO_ARC}.16", "Source repository owner",
          "source-repository-owner", form="uri", group="source"),
    Field("source_repository_owner_identifier", f"{FULCIO_ARC}.17",
          "Source repository owner identifier", None, group="source"),
    Field("build_config_uri", f"{FULCIO_ARC}.18", "Build config URI", None),
    Field("build_config_digest", f"{FULCIO_ARC}.19", "Build config digest", "build-config-digest"),
    Field("build_trigger", f"{FULCIO_ARC}.20", "Build trigger", None),
    Field("run_invocation_uri", f"{FULCIO_ARC}.21", "Run invocation URI", None),
    Field("namespace", f"{OUR_ARC}.1", "Namespace", None, group="service"),
    Field("build_config_name", f"{OUR_ARC}.2", "Build config name", "build-config-name"),
    Field("provenance_source", f"{OUR_ARC}.3", "Provenance source", None, group="service"),
)
BY_KEY: dict[str, Field] = {f.key: f for f in FIELDS}
BY_OID: dict[str, Field] = {f.oid: f for f in FIELDS} | {
    f.oid.replace(PROJECT_ARC, PROJECT_ARC_X667): f for f in FIELDS
    if f.oid.startswith(PROJECT_ARC)}  # read both spellings of our arc
# By OID object: reading a certificate spells no extension OID out as text (~15 us).
_BY_EXTENSION_OID: dict[ObjectIdentifier, Field] = {
    ObjectIdentifier(oid): f for oid, f in BY_OID.items()}
FLAG_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.flag)

# Fulcio's first extensions (1.1–1.6), still written for GitHub tokens because older
# verifiers read them. Their value is the raw string, not a DER UTF8String.
LEGACY_OIDS: dict[str, str] = {
    f"{FULCIO_ARC}.1": "iss",
    f"{FULCIO_ARC}.2": "event_name",
    f"{FULCIO_ARC}.3": "sha",
    f"{FULCIO_ARC}.4": "workflow",
    f"{FULCIO_ARC}.5": "repository",
    f"{FULCIO_ARC}.6": "ref",
}

# Each issuance writes them: parsed once.
_FIELD_OIDS = tuple((f.key, ObjectIdentifier(f.oid)) for f in FIELDS)
_LEGACY_OIDS = tuple((ObjectIdentifier(oid), claim) for oid, claim in LEGACY_OIDS.items())


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a certificate says about the build that holds it. Unset fields are None."""

    issuer: str | None = None
    build_signer_uri: str | None = None
    build_signer_digest: str | None = None
    runner_environment: str | None = None
    source_repository: str | None = None
    source_repository_digest: str | None = None
    source_repository_ref: str | None = None
    source_repository_identifier: str | None = None
    source_repository_owner: str | None = None
    source_repository_owner_identifier: str | None = None
    build_config_uri: str | None = None
    build_config_digest: str | None = None
    build_trigger: str | None = None
    run_invocation_uri: str | None = None
    namespace: str | None = None
    build_config_name: str | None = None
    provenance_source: str | None = None

    # -- building (from a token: signer.issuers) -----------------------------------------
    @classmethod
    def declared(cls, flags: Mapping[str, str | None], issuer: str, namespace: str) -> Provenance:
        """Provenance an API-key holder states about itself; recorded as ``declared``."""
        values = {k: v for k, v in flags.items() if v and k in BY_KEY and BY_KEY[k].flag}
        values.pop("issuer", None)
        for key in ("source_repository", "source_repository_owner"):
            if key in values and "://" not in values[key]:
                values[key] = "https://github.com/" + values[key].strip("/")
        return cls(**values, issuer=issuer, namespace=namespace, provenance_source="declared")

    def with_flags_checked(self, flags: Mapping[str, str | None]) -> Provenance:
        """Token provenance wins: a flag may repeat a claim, never contradict or add to it."""
        for key, wanted in flags.items():
            if not wanted:
                continue
            field = BY_KEY[key]
            have = getattr(self, key)
            if have is None:
                raise UsageError(
                    f"--{field.flag} was given but the OIDC token carries no {field.label}; "
                    "with a token, provenance comes from the token alone.",
                    f"Remove --{field.flag}.",
                )
            if not matches(field, have, wanted):
                raise UsageError(
                    f"--{field.flag} '{wanted}' contradicts the OIDC token, which says '{have}'.",
                    f"Remove --{field.flag}, or run the job from the {field.label.lower()} "
                    "you meant to sign for.",
                )
        return self

    def items(self) -> list[tuple[Field, str]]:
        """The set fields, in table order."""
        return [(f, v) for f in FIELDS if (v := getattr(self, f.key)) is not None]

    def as_dict(self) -> dict[str, str]:
        return {f.key: v for f, v in self.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        return cls(**{k: str(v) for k, v in data.items() if k in BY_KEY and v is not None})

    def replace(self, **changes: str | None) -> Provenance:
        return dataclasses.replace(self, **changes)

    # -- certificate extensions -----------------------------------------------------------
    def extensions(self, claims: Claims | None = None) -> list[x509.UnrecognizedExtension]:
        """Non-critical extensions for a leaf, DER UTF8String values; legacy ones from claims.

        The legacy issuer (1.1) is always written: sigstore-python's identity policy reads it.
        """
        exts = [
            x509.UnrecognizedExtension(oid, _der_utf8(v))
            for key, oid in _FIELD_OIDS if (v := getattr(self, key)) is not None
        ]
        legacy = dict(claims or {})
        if self.issuer is not None:
            legacy["iss"] = self.issuer
        for oid, claim in _LEGACY_OIDS:
            if (value := claim_text(legacy.get(claim))) is not None:
                exts.append(x509.UnrecognizedExtension(oid, value.encode()))
        return exts

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> Provenance:
        values: dict[str, str] = {}
        for ext in cert.extensions:
            field = _BY_EXTENSION_OID.get(ext.oid)
            if field is not None and isinstance(ext.value, x509.UnrecognizedExtension):
                values[field.key] = _from_der_utf8(ext.value.value, field)
        return cls(**values)


def matches(field: Field, have: str, wanted: str) -> bool:
    """Compare a flag in the user's form with the certificate's value, by normalising.

    URI fields: a full URL must be equal; a short form (``org/repo``, ``my-org``) must equal
    the URL's path. Never a substring match.
    """
    if field.form == "uri" and "://" not in wanted:
        return urlsplit(have).path.strip("/") == wanted.strip("/")
    if field.form == "uri":
        return have.rstrip("/") == wanted.rstrip("/")
    return have == wanted


def _der_utf8(value: str) -> bytes:
    data = value.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + data


def _from_der_utf8(der: bytes, field: Field) -> str:
    if len(der) < 2 or der[0] != 0x0C:
        raise UsageError(f"The certificate's {field.label} extension is not a UTF8String.")
    first = der[1]
    if first < 0x80:
        start, n = 2, first
    else:
        count = first & 0x7F
        start, n = 2 + count, int.from_bytes(der[2 : 2 + count], "big")
    body = der[start : start + n]
    if len(body) != n or start + n != len(der):
        raise UsageError(f"The certificate's {field.label} extension has a bad length.")
    return body.decode("utf-8")
