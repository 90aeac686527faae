"""`signer artifact verify` on the corpus: --key, --predicate-type, other instances' roots.

Offline (--bundle, --trust-root) with the static assets; the API address points nowhere, so
nothing may reach a service.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from signer.cli import cli

ASSETS = Path(__file__).resolve().parents[1] / "assets"
META = json.loads((ASSETS / "verification.meta.json").read_text())
NAME = f"ghcr.io/acme/app@sha256:{META['digest']}"
CORPUS_ROOT = str(ASSETS / "corpus" / "trusted_root.json")
SLSA_V1 = "https://slsa.dev/provenance/v1"

pytestmark = pytest.mark.usefixtures("no_network")


def run(*args: str, name: str = NAME) -> Result:
    return CliRunner().invoke(cli, ["artifact", "verify", "--name", name, "--output", "json",
                                    *args], env={"SIGNER_API": "http://127.0.0.1:9"})


def entry(done: Result) -> dict[str, object]:
    (found,) = json.loads(done.stdout)["entries"]
    assert isinstance(found, dict)
    return found


def identity() -> list[str]:
    return ["--certificate-oidc-issuer", META["issuer"], "--certificate-identity",
            META["identity"]]


def test_a_managed_key_bundle_verifies_with_its_key_and_no_identity() -> None:
    done = run("--bundle", str(ASSETS / "corpus/public-key-hashedrekord.sigstore.json"),
               "--trust-root", CORPUS_ROOT, "--key", str(ASSETS / "corpus/key-managed.pem"))
    assert done.exit_code == 0, done.output
    assert str(entry(done)["identity"]).startswith("key ")


def test_the_wrong_key_is_refused() -> None:
    done = run("--bundle", str(ASSETS / "corpus/public-key-hashedrekord.sigstore.json"),
               "--trust-root", CORPUS_ROOT, "--key", str(ASSETS / "corpus/key-another.pem"))
    assert done.exit_code == 1
    assert entry(done)["failed_step"] == 6


def test_key_and_identity_flags_exclude_each_other() -> None:
    done = run("--bundle", str(ASSETS / "corpus/public-key-hashedrekord.sigstore.json"),
               "--trust-root", CORPUS_ROOT, "--key", str(ASSETS / "corpus/key-managed.pem"),
               *identity())
    assert done.exit_code != 0
    assert "no identity or provenance to check" in str(done.exception) + done.output


def test_an_attestation_needs_its_predicate_type() -> None:
    bundle = str(ASSETS / "corpus/dsse-rekor-v1-dsse.sigstore.json")
    without = run("--bundle", bundle, "--trust-root", CORPUS_ROOT, *identity())
    assert without.exit_code == 1
    assert entry(without)["failed_step"] == 1
    assert "pass --predicate-type" in str(entry(without)["error"])
    done = run("--bundle", bundle, "--trust-root", CORPUS_ROOT, *identity(),
               "--predicate-type", SLSA_V1)
    assert done.exit_code == 0, done.output
    assert entry(done)["predicate_type"] == SLSA_V1


def test_a_signature_is_not_an_attestation() -> None:
    done = run("--bundle", str(ASSETS / "bundle-good.sigstore.json"), "--trust-root",
               str(ASSETS / "trusted_root-good.json"), *identity(), "--predicate-type", SLSA_V1)
    assert done.exit_code == 1
    assert entry(done)["failed_step"] == 1


def test_a_staging_bundle_verifies_with_sigstores_client_trust_config() -> None:
    """Another instance's trust root (a ClientTrustConfig as sigstore-python pins it), an
    email identity, a Rekor v2 entry."""
    digest = "15f67246115921bb7c1de0e7e9e9275c8016dc254a0c009888944b7ed3644aaa"
    args = ["--bundle", str(ASSETS / "sigstore-python/staging-rekor-v2.txt.sigstore.json"),
            "--trust-root", str(ASSETS / "sigstore-python/staging-but-sign-with-rekor-v2.json"),
            "--certificate-oidc-issuer", "https://github.com/login/oauth"]
    done = run(*args, "--certificate-identity", "jku@goto.fi", name=f"staging@sha256:{digest}")
    assert done.exit_code == 0, done.output
    assert entry(done)["identity"] == "jku@goto.fi"
    regexp = run(*args, "--certificate-identity-regexp", r".*@goto\.fi",
                 name=f"staging@sha256:{digest}")
    assert regexp.exit_code == 0, regexp.output
    other = run(*args, "--certificate-identity", "someone@else.example",
                name=f"staging@sha256:{digest}")
    assert other.exit_code == 1 and entry(other)["failed_step"] == 8


def test_a_github_attestation_verifies_with_githubs_trust_root_and_the_file(
        tmp_path: Path) -> None:
    """GitHub's instance logs nothing; the subject names only the SHA-512 of the file, so
    the file itself is given (its SHA-512 is computed too). The file here is a stand-in whose
    digest does not match: the refusal is step 1, after the bundle was read as GitHub's."""
    stand_in = tmp_path / "sigstore-1.3.0.tgz"
    stand_in.write_bytes(b"not the package")
    done = CliRunner().invoke(cli, [
        "artifact", "verify", "--file", str(stand_in), "--output", "json",
        "--bundle", str(ASSETS / "sigstore-go/bundle-github-staging.json"),
        "--trust-root", str(ASSETS / "sigstore-go/trusted-root-github-staging.json"),
        "--certificate-oidc-issuer", "https://github.com/login/oauth",
        "--certificate-identity", "cody@soyland.com",
        "--predicate-type", "https://slsa.dev/provenance/v0.2"],
        env={"SIGNER_API": "http://127.0.0.1:9"})
    assert done.exit_code == 1, done.output
    assert entry(done)["failed_step"] == 1
    assert "not a subject" in str(entry(done)["error"])
