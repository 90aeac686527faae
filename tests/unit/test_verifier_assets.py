"""The verifier on its own: static bundles and trust roots from ``tests/assets``, no service.

Each broken bundle (made by ``tests/assets/make_verification_assets.py`` with the service's
own CA, TSA, logs and bundle code) changes one thing and must fail at exactly its step, as
data on the result. Nothing here may touch the network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from rfc3161_client import decode_timestamp_response

from signer import bundle, trust
from signer.bundle import SignedArtifact
from signer.sigstore_json import TimeRange, TransparencyLogInstance
from signer.trust import TrustMaterial
from signer.verification import Report, Verifier, from_flags, verify_entries

ASSETS = Path(__file__).resolve().parents[1] / "assets"
META = json.loads((ASSETS / "verification.meta.json").read_text())
DIGEST = bytes.fromhex(META["digest"])
SECOND = timedelta(seconds=1)


pytestmark = pytest.mark.usefixtures("no_network")


def test_the_network_is_refused() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="network"):
        sock.connect(("127.0.0.1", 9))


def artifact(name: str) -> SignedArtifact:
    return bundle.read(ASSETS / name)


def trust_root(name: str = "trusted_root-good.json") -> TrustMaterial:
    return trust.read(ASSETS / name)


def verify(bundle_name: str, material: TrustMaterial | None = None, digest: bytes = DIGEST,
           **flags: Any) -> Report:
    policy = from_flags(flags.pop("issuer", META["issuer"]),
                        flags.pop("identity", META["identity"]), None, flags)
    return verify_entries(Verifier(material or trust_root()),
                          [(bundle_name, artifact(bundle_name), None)], digest, policy,
                          revocation_checked=False)


def failed_step(report: Report) -> int | None:
    (result,) = report.results
    assert not result.ok
    assert result.error is not None and result.reason is not None
    return result.failed_step


def test_the_good_bundle_verifies() -> None:
    report = verify("bundle-good.sigstore.json")
    assert report.ok
    (result,) = report.results
    assert result.failed_step is None and result.verified is not None
    assert result.verified.identity == META["identity"]
    assert result.verified.provenance.source_repository_ref == META["source_repository_ref"]


@pytest.mark.parametrize(("name", "step", "because"), [
    ("bundle-timestamp-over-other-signature.sigstore.json", 2, "no trusted timestamp"),
    ("bundle-timestamp-by-untrusted-tsa.sigstore.json", 2, "no trusted timestamp"),
    ("bundle-leaf-from-foreign-root.sigstore.json", 3, "does not chain to a trusted root"),
    ("bundle-leaf-without-key-usage.sigstore.json", 4, "no KeyUsage extension"),
    ("bundle-leaf-eku-client-auth-only.sigstore.json", 4, "not for code signing"),
    ("bundle-leaf-without-sct.sigstore.json", 5, "no embedded SCT"),
    ("bundle-sct-from-unknown-ct-log.sigstore.json", 5, "not trusted"),
    ("bundle-log-entry-of-another-signature.sigstore.json", 6, "body does not match"),
    ("bundle-inclusion-proof-tampered.sigstore.json", 6, "inclusion proof does not verify"),
    ("bundle-checkpoint-signed-by-another-key.sigstore.json", 6, "not signed by the log"),
    ("bundle-signature-not-by-leaf-key.sigstore.json", 7, "does not verify"),
])
def test_a_broken_bundle_fails_at_its_step(name: str, step: int, because: str) -> None:
    report = verify(name)
    assert failed_step(report) == step
    (result,) = report.results
    assert because in (result.reason or "")
    assert (result.error or "").startswith(f"step {step} (")


def test_a_v03_bundle_needs_no_inclusion_promise() -> None:
    """v0.2 on, the inclusion proof and its checkpoint prove the entry; the promise is
    optional (the bundle specification; sigstore-python and sigstore-go agree). The time comes
    from the bundle's RFC 3161 timestamp."""
    assert verify("bundle-without-inclusion-promise.sigstore.json").ok


def test_another_digest_fails_at_step_1() -> None:
    assert failed_step(verify("bundle-good.sigstore.json",
                              digest=bytes.fromhex(META["other_digest"]))) == 1


def test_a_timestamp_before_the_tsa_was_trusted_fails_at_step_2() -> None:
    report = verify("bundle-good.sigstore.json",
                    trust_root("trusted_root-tsa-valid-only-after-signing.json"))
    assert failed_step(report) == 2
    assert "outside its TSA key's validity" in (report.results[0].reason or "")


def test_another_identity_fails_at_step_8() -> None:
    report = verify("bundle-good.sigstore.json", identity="repo:acme/app:ref:refs/heads/main")
    assert failed_step(report) == 8


def test_another_provenance_fails_at_step_8() -> None:
    report = verify("bundle-good.sigstore.json", source_repository_ref="refs/tags/v9.9.9")
    assert failed_step(report) == 8
    assert "refs/tags/v9.9.9" in (report.results[0].reason or "")


def test_one_bad_entry_never_aborts_the_report() -> None:
    """The KeyUsage-less leaf used to raise out of step 4 and abort every entry's report."""
    policy = from_flags(META["issuer"], META["identity"])
    entries = [(name, artifact(name), None) for name in (
        "bundle-leaf-without-key-usage.sigstore.json", "bundle-good.sigstore.json")]
    report = verify_entries(Verifier(trust_root()), entries, DIGEST, policy, False)
    assert report.ok
    assert [(r.ok, r.failed_step) for r in report.results] == [(False, 4), (True, None)]


def test_an_unexpected_error_is_the_steps_failure() -> None:
    """A leaf whose SCT list is garbled: cryptography raises reading its extensions in step 4,
    an error no step expects; it is that entry's step-4 failure, not a crashed report."""
    report = verify("bundle-leaf-sct-list-garbled.sigstore.json")
    assert failed_step(report) == 4
    assert "could not be checked (ValueError: " in (report.results[0].reason or "")


# -- validity windows: validFor.end is inclusive, for CA, TSA, tlog and ctlog keys alike ------
GOOD = artifact("bundle-good.sigstore.json")
SIGNED_AT = decode_timestamp_response(GOOD.timestamps[0]).tst_info.gen_time
ISSUED = GOOD.certificate.not_valid_before_utc
INTEGRATED = datetime.fromtimestamp(int(GOOD.tlog_entries[0].integrated_time or 0),
                                    SIGNED_AT.tzinfo)
_SCT = GOOD.certificate.extensions.get_extension_for_class(
    x509.PrecertificateSignedCertificateTimestamps).value[0]
SCT_AT = _SCT.timestamp.replace(tzinfo=SIGNED_AT.tzinfo)


def _log(log: TransparencyLogInstance, start: datetime, end: datetime
         ) -> TransparencyLogInstance:
    key = dataclasses.replace(log.public_key, valid_for=TimeRange(start=start, end=end))
    return dataclasses.replace(log, public_key=key)


def with_window(kind: str, start: datetime, end: datetime) -> TrustMaterial:
    good = trust_root()
    if kind == "ca":
        return dataclasses.replace(good, cas=(dataclasses.replace(good.cas[0], start=start,
                                                                  end=end),))
    if kind == "tsa":
        return dataclasses.replace(good, tsas=(dataclasses.replace(good.tsas[0], start=start,
                                                                   end=end),))
    if kind == "tlog":
        return dataclasses.replace(good, tlogs=(_log(good.tlogs[0], start, end),))
    return dataclasses.replace(good, ctlogs=(_log(good.ctlogs[0], start, end),))


# The time each kind of key is judged at: the leaf's issuance and the signing time (CA), the
# timestamp (TSA), the entry's integration (tlog), the SCT's timestamp (ctlog).
WINDOWS = {"ca": (ISSUED, SIGNED_AT, 3), "tsa": (SIGNED_AT, SIGNED_AT, 2),
           "tlog": (INTEGRATED, INTEGRATED, 6), "ctlog": (SCT_AT, SCT_AT, 5)}


@pytest.mark.parametrize("kind", WINDOWS)
def test_a_window_that_ends_at_the_time_holds_it(kind: str) -> None:
    first, last, _ = WINDOWS[kind]
    assert verify("bundle-good.sigstore.json", with_window(kind, first, last)).ok


@pytest.mark.parametrize("kind", WINDOWS)
def test_a_window_that_ended_a_second_before_fails(kind: str) -> None:
    first, last, step = WINDOWS[kind]
    report = verify("bundle-good.sigstore.json",
                    with_window(kind, first - timedelta(days=1), last - SECOND))
    assert failed_step(report) == step
    assert "retired" in (report.results[0].reason or "")


@pytest.mark.parametrize("kind", WINDOWS)
def test_a_window_that_starts_a_second_after_fails(kind: str) -> None:
    first, last, step = WINDOWS[kind]
    report = verify("bundle-good.sigstore.json",
                    with_window(kind, first + SECOND, last + timedelta(days=1)))
    assert failed_step(report) == step
    assert (first + SECOND).isoformat() in (report.results[0].reason or "")


@pytest.mark.parametrize(("name", "step"), [("bundle-good.sigstore.json", None),
                                            ("bundle-leaf-without-key-usage.sigstore.json", 4)])
def test_the_cli_reports_the_failed_step_as_json(name: str, step: int | None) -> None:
    from click.testing import CliRunner

    from signer.cli import cli

    done = CliRunner().invoke(cli, [
        "artifact", "verify", "--name", f"ghcr.io/acme/app@sha256:{META['digest']}",
        "--bundle", str(ASSETS / name), "--trust-root", str(ASSETS / "trusted_root-good.json"),
        "--certificate-oidc-issuer", META["issuer"], "--certificate-identity",
        META["identity"], "--output", "json"], env={"SIGNER_API": "http://127.0.0.1:9"})
    assert done.exit_code == (0 if step is None else 1), done.output
    (entry,) = json.loads(done.stdout)["entries"]
    assert entry["failed_step"] == step


def test_the_generator_still_makes_every_asset(tmp_path: Path) -> None:
    """The assets are regenerated when the bundle, log or key code changes: the generator
    must keep running, write the files that are checked in, and its good bundle verify."""
    script = ASSETS / "make_verification_assets.py"
    (tmp_path / "corpus").mkdir()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SIGNER_ASSETS_OUT": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    kept = {p.relative_to(ASSETS) for p in ASSETS.rglob("*") if p.is_file()}
    assert len(made) >= 40 and made <= kept, sorted(map(str, made - kept))
    fresh = verify_entries(
        Verifier(trust.read(tmp_path / "trusted_root-good.json")),
        [("fresh", bundle.read(tmp_path / "bundle-good.sigstore.json"), None)], DIGEST,
        from_flags(META["issuer"], META["identity"], None, {}), revocation_checked=False)
    assert fresh.ok, fresh.results[0].error
