"""Unmodified sigstore-js (@sigstore/verify, default thresholds) verifies our bundles against
our trusted root, and fails on the same tampering as sigstore-python."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.interop.conftest import Signed
from tests.interop.test_sigstore_python import TAMPERING, _edit

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).parent / "js" / "verify.mjs"


def first_san(signed: Signed) -> str:
    """sigstore-js matches the leaf's first URI SAN: for a github-kind token, the job's
    workflow (as Fulcio names it), before the token's subject."""
    bundle = json.loads(signed.bundle.read_text())
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return str(san.get_values_for_type(x509.UniformResourceIdentifier)[0])


def js_verify(signed: Signed, bundle: Path, artifact: Path | None = None,
              identity: str | None = None, issuer: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is installed by scripts/prereqs/60-node.sh"
    assert (SCRIPT.parent / "node_modules" / "@sigstore" / "verify").is_dir(), \
        "run scripts/test (npm ci in tests/interop/js)"
    return subprocess.run(
        [node, "--no-warnings", str(SCRIPT), str(signed.root), str(bundle),
         str(artifact or signed.file), identity or first_san(signed), issuer or signed.issuer],
        capture_output=True, text=True, timeout=60)


def test_verifies(signed: Signed) -> None:
    done = js_verify(signed, signed.bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["identity"] == first_san(signed)
    assert first_san(signed).endswith("/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3")


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_refused(signed: Signed, case: str) -> None:
    done = js_verify(signed, _edit(signed, case.replace(" ", "-"), TAMPERING[case]))
    assert done.returncode == 1, case
    assert json.loads(done.stdout)["verified"] is False


def test_wrong_artifact_identity_issuer(signed: Signed) -> None:
    other = signed.workdir / "other.txt"
    other.write_text("x")
    assert js_verify(signed, signed.bundle, artifact=other).returncode == 1
    assert js_verify(signed, signed.bundle, identity="repo:evil/app:ref:x").returncode == 1
    assert js_verify(signed, signed.bundle, issuer="https://evil.example").returncode == 1
