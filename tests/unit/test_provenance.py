from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer import issuers
from signer.errors import UsageError
from signer.provenance import (
    BY_KEY,
    FIELDS,
    PROJECT_ARC,
    PROJECT_ARC_X667,
    PROJECT_UUID,
    Provenance,
    matches,
)
from signer.service import ca
from signer.service.auth import Principal
from signer.service.keys import FileKey
from signer.service.signing import SigningService

CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app:ref:refs/tags/v1",
    "repository": "acme/app", "repository_owner": "acme", "ref": "refs/tags/v1", "sha": "abc",
    "workflow": "release", "workflow_ref": "acme/app/.github/workflows/r.yml@refs/tags/v1",
    "workflow_sha": "abc", "job_workflow_ref": "acme/app/.github/workflows/r.yml@refs/tags/v1",
    "job_workflow_sha": "abc", "runner_environment": "github-hosted", "event_name": "push",
    "run_id": "7", "run_attempt": "2", "brand_new_claim": {"nested": True},
}
GITHUB = issuers.resolve(CLAIMS["iss"], {})


@pytest.mark.parametrize(("issuer", "server"), [
    ("https://token.actions.githubusercontent.com", "https://github.com"),
    ("https://token.actions.githubusercontent.com/acme-enterprise", "https://github.com"),
    ("https://token.actions.octo.ghe.com", "https://octo.ghe.com"),
    ("https://ghes.example/_services/token", "https://ghes.example"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
])
def test_server_url_of_every_issuer_form(issuer: str, server: str) -> None:
    assert issuers.default_server_url("github", issuer) == server


def test_claims_map_to_the_design_table() -> None:
    p = GITHUB.provenance(CLAIMS, "acme")
    assert p.source_repository == "https://github.com/acme/app"
    assert p.source_repository_owner == "https://github.com/acme"
    assert p.build_signer_uri == "https://github.com/acme/app/.github/workflows/r.yml@refs/tags/v1"
    assert p.run_invocation_uri == "https://github.com/acme/app/actions/runs/7/attempts/2"
    assert p.build_config_name == "release" and p.build_trigger == "push"
    assert p.provenance_source == "token" and p.namespace == "acme"


def test_extensions_round_trip_through_a_certificate() -> None:
    p = GITHUB.provenance(CLAIMS, "acme").replace(build_config_name="ré" * 100)
    cert = _leaf(p.extensions(CLAIMS))
    assert Provenance.from_certificate(cert) == p
    legacy = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5"))
    assert legacy.value.value == b"acme/app"  # type: ignore[attr-defined]
    assert len({f.oid for f in FIELDS}) == len(FIELDS)


def _leaf(extensions: list[x509.UnrecognizedExtension]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(
        x509.Name([])).public_key(key.public_key()).serial_number(1).not_valid_before(
        datetime(2026, 1, 1)).not_valid_after(datetime(2026, 1, 2))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_our_arc_is_parseable_by_go_and_names_the_project_uuid() -> None:
    # Go's x509 (gh, cosign, policy-controller) refuses an arc past 2^63; RFC 5280 asks
    # parsers for 2^28. Every arc we write fits in 16 bits, and spells the project's UUID.
    assert PROJECT_ARC.startswith("1.3.6.1.4.1.54392.3.")
    arcs = [int(a) for a in PROJECT_ARC.split(".")[8:]]
    assert len(arcs) == 8 and max(arcs) < 2**16
    assert b"".join(a.to_bytes(2, "big") for a in arcs) == PROJECT_UUID.bytes
    ours = [f for f in FIELDS if not f.oid.startswith("1.3.6.1.4.1.57264.")]
    assert {f.key for f in ours} == {"namespace", "build_config_name", "provenance_source"}
    assert all(f.oid.startswith(PROJECT_ARC + ".1.") for f in ours)


def test_a_leaf_from_before_the_arc_change_is_still_read() -> None:
    p = GITHUB.provenance(CLAIMS, "acme")
    old = [x509.UnrecognizedExtension(
        x509.ObjectIdentifier(e.oid.dotted_string.replace(PROJECT_ARC, PROJECT_ARC_X667)),
        e.value) for e in p.extensions(CLAIMS)]
    assert any(e.oid.dotted_string.startswith("2.25.") for e in old)
    assert Provenance.from_certificate(_leaf(old)) == p


def test_flags_compare_by_normalising_never_by_substring() -> None:
    repo, owner = BY_KEY["source_repository"], BY_KEY["source_repository_owner"]
    assert matches(repo, "https://github.com/acme/app", "acme/app")
    assert matches(repo, "https://github.com/acme/app", "https://github.com/acme/app/")
    assert not matches(repo, "https://github.com/acme/app", "acme/ap")
    assert not matches(repo, "https://github.com/acme/app-evil", "acme/app")
    assert not matches(owner, "https://github.com/acme-evil", "acme")
    assert not matches(BY_KEY["source_repository_ref"], "refs/tags/v1", "v1")


def test_token_provenance_cannot_be_overridden() -> None:
    p = GITHUB.provenance(CLAIMS, "acme")
    assert p.with_flags_checked({"source_repository": "acme/app", "source_repository_ref": None})
    with pytest.raises(UsageError, match="contradicts"):
        p.with_flags_checked({"source_repository_ref": "refs/heads/evil"})
    bare = issuers.resolve("https://x", {}).provenance({"iss": "https://x", "sub": "s"}, "acme")
    with pytest.raises(UsageError, match="carries no"):
        bare.with_flags_checked({"build_config_name": "release"})


def test_declared_provenance_is_marked_and_never_sets_the_issuer() -> None:
    p = Provenance.declared({"source_repository": "acme/app", "issuer": "https://evil",
                             "build_trigger": "push"}, "https://signer/auth", "acme")
    assert p.issuer == "https://signer/auth" and p.provenance_source == "declared"
    assert p.source_repository == "https://github.com/acme/app"
    assert p.build_trigger is None  # no CLI flag exists for it, so it cannot be declared


@pytest.mark.parametrize("kind", ["token", "declared"])
def test_a_signing_stores_the_provenance_its_leaf_carries(kind: str) -> None:
    """POST /v1/sign stores the provenance `_issue` issued the leaf with, not one read back
    from the leaf: the two must be the same, field for field."""
    def key() -> FileKey:
        return FileKey(ec.generate_private_key(ec.SECP256R1()))

    root_key, ca_key = key(), key()
    root = ca.create_root(root_key)
    authority = ca.CertificateAuthority(
        ca_key, ca.create_intermediate(ca_key.public_key, root_key, root), root)
    service = SigningService(None, None, authority, None, None, None,  # type: ignore[arg-type]
                             SimpleNamespace(signer=key()), None, None)  # type: ignore[arg-type]
    if kind == "token":
        principal = Principal("oidc", str(CLAIMS["sub"]), str(CLAIMS["iss"]), CLAIMS,
                              oidc_issuer=GITHUB)
        declared = {"source_repository": "acme/app", "source_repository_ref": None}
    else:
        principal = Principal("apikey", "apikey:ci", "https://signer.example/api-keys")
        declared = {"source_repository": "acme/app", "source_repository_ref": "refs/tags/v1",
                    "build_config_name": "ré" * 100, "runner_environment": ""}
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    cert, provenance, _ = service._issue(principal, "acme", csr, declared)
    assert provenance.provenance_source == kind
    read_back = Provenance.from_certificate(cert)
    assert read_back == provenance
    assert read_back.as_dict() == provenance.as_dict()
    assert read_back.issuer == provenance.issuer == principal.issuer
