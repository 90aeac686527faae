"""Our own offline verify uses the whole log: it refuses the same tampering as Sigstore's
clients, and names the step that failed."""

from __future__ import annotations

import subprocess

import pytest

from tests.interop.conftest import Signed
from tests.interop.test_sigstore_python import TAMPERING, _edit
from tests.service_process import SIGNER, clean_env

pytestmark = pytest.mark.integration

EXPECTED_STEP = {
    "flipped signature byte": "step 2 (timestamp)",  # the TSA signed the original bytes
    "tampered canonicalizedBody": "step 6 (transparency log entry)",
    "checkpoint signed by another key": "step 6 (transparency log entry)",
    "wrong inclusion-proof hash": "step 6 (transparency log entry)",
    "leaf without its SCT": "step 5 (certificate transparency (SCT))",
}


def our_verify(signed: Signed, bundle) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIGNER, "artifact", "verify", "--file", str(signed.file), "--bundle", str(bundle),
         "--trust-root", str(signed.root), "--certificate-oidc-issuer", signed.issuer,
         "--certificate-identity", signed.identity],
        capture_output=True, text=True, env=clean_env(), timeout=60)


def test_untampered_bundle_verifies_with_its_log_index(signed: Signed) -> None:
    done = our_verify(signed, signed.bundle)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_names_the_step(signed: Signed, case: str) -> None:
    done = our_verify(signed, _edit(signed, case.replace(" ", "-"), TAMPERING[case]))
    assert done.returncode == 1
    assert EXPECTED_STEP[case] in done.stderr, done.stderr
