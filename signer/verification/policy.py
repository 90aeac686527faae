"""What an identity must be: one tiny object per expectation, composed with :class:`AllOf`.

The verifier checks cryptography and time; these check who signed and from what build.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from signer.errors import UsageError
from signer.provenance import BY_KEY, Provenance, matches


class PolicyError(Exception):
    """A certificate does not satisfy a policy; the message says what was expected."""


class Policy(Protocol):
    """``identities``: every identity the leaf names (its URI and email SANs), in order."""

    def verify(self, identities: Sequence[str], provenance: Provenance) -> None: ...


# Fulcio's first issuer extension (1.3.6.1.4.1.57264.1.1) holds the URL as raw bytes; leaves
# issued before late 2022 carry only it, later ones also the DER form that Provenance reads.
_LEGACY_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def certificate_identity(cert: x509.Certificate) -> str:
    """The one URI identity of a leaf signer's CA issued (the service's own check)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise PolicyError("the certificate has no subject alternative name") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise PolicyError(f"the certificate has {len(uris)} URI identities, expected exactly 1")
    return uris[0]


def certificate_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """Every identity of the leaf: URI SANs (workflows, SPIFFE ids), then email SANs (people).
    GitHub's and Fulcio's leaves may carry several; a policy matches any of them."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise PolicyError("the certificate has no subject alternative name") from exc
    found = (*san.get_values_for_type(x509.UniformResourceIdentifier),
             *san.get_values_for_type(x509.RFC822Name))
    if not found:
        raise PolicyError("the certificate names no URI or email identity")
    return tuple(found)


def certificate_provenance(cert: x509.Certificate) -> Provenance:
    """The Fulcio extensions, with the issuer of a leaf that has only the legacy extension."""
    provenance = Provenance.from_certificate(cert)
    if provenance.issuer is None:
        try:
            legacy = cert.extensions.get_extension_for_oid(_LEGACY_ISSUER_OID).value
        except x509.ExtensionNotFound:
            return provenance
        if isinstance(legacy, x509.UnrecognizedExtension):
            return dataclasses.replace(provenance, issuer=legacy.value.decode("utf-8"))
    return provenance


def _quoted(identities: Sequence[str]) -> str:
    if len(identities) == 1:
        return f"certificate identity is '{identities[0]}'"
    return "certificate identities are " + ", ".join(f"'{i}'" for i in identities)


@dataclass(frozen=True)
class Identity:
    expected: str

    def verify(self, identities: Sequence[str], provenance: Provenance) -> None:
        if self.expected not in identities:
            raise PolicyError(f"{_quoted(identities)}, expected '{self.expected}'")


@dataclass(frozen=True)
class IdentityRegexp:
    pattern: re.Pattern[str]

    def verify(self, identities: Sequence[str], provenance: Provenance) -> None:
        if not any(self.pattern.fullmatch(i) for i in identities):
            raise PolicyError(f"{_quoted(identities)}, none matches /{self.pattern.pattern}/ "
                              "(the whole identity must match)")


@dataclass(frozen=True)
class ProvenanceField:
    """One provenance expectation (``--source-repository-ref`` …); the issuer is one too."""

    key: str
    expected: str

    def verify(self, identities: Sequence[str], provenance: Provenance) -> None:
        field = BY_KEY[self.key]
        have = getattr(provenance, self.key)
        if have is None:
            raise PolicyError(f"certificate has no {field.label}, expected '{self.expected}'")
        if not matches(field, have, self.expected):
            raise PolicyError(
                f"certificate's {field.label} does not match: got '{have}', "
                f"expected '{self.expected}'"
            )


@dataclass(frozen=True)
class AllOf:
    policies: Sequence[Policy]

    def verify(self, identities: Sequence[str], provenance: Provenance) -> None:
        for policy in self.policies:
            policy.verify(identities, provenance)


def from_flags(
    issuer: str | None,
    identity: str | None = None,
    identity_regexp: str | None = None,
    provenance: Mapping[str, str | None] | None = None,
) -> AllOf:
    """The policy the verify command's flags describe."""
    if not issuer:
        raise UsageError("--certificate-oidc-issuer is required to verify.",
                         "Pass the issuer the signer used, e.g. "
                         "https://token.actions.githubusercontent.com.")
    if identity and identity_regexp:
        raise UsageError("--certificate-identity and --certificate-identity-regexp exclude "
                         "each other.", "Pass one of them.")
    policies: list[Policy] = [ProvenanceField("issuer", issuer)]
    if identity:
        policies.append(Identity(identity))
    if identity_regexp:
        try:
            policies.append(IdentityRegexp(re.compile(identity_regexp)))
        except re.error as exc:
            raise UsageError(f"--certificate-identity-regexp is not a valid regular "
                             f"expression: {exc}.") from exc
    for key, value in (provenance or {}).items():
        if value and key != "issuer":
            policies.append(ProvenanceField(key, value))
    return AllOf(policies)
