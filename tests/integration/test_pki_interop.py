"""Independent tools accept what the service issues: openssl (X.509, RFC 3161) and pkilint."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signer.provenance import OUR_ARC
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.integration.test_signing_flow import NAME, sign_with_token
from tests.service_process import BIN, Service, Tenant

pytestmark = pytest.mark.integration

OPENSSL = "openssl"


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, **kwargs)


@pytest.fixture
def signed(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant, tmp_path: Path) -> dict:
    out = sign_with_token(service, issuer, tenant, tmp_path, "--bundle", "b.sigstore.json")
    keys = service.data_dir / "keys"
    for name in ("root", "intermediate", "tsa"):
        (tmp_path / f"{name}.pem").write_bytes((keys / f"{name}.pem").read_bytes())
    (tmp_path / "leaf.pem").write_text(out["certificate"])
    bundle = out["bundle"]
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(bundle["messageSignature"]["signature"]))
    ts = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    (tmp_path / "ts.tsr").write_bytes(base64.b64decode(ts["signedTimestamp"]))
    return out


def test_openssl_verifies_the_chain_and_shows_the_profile(signed: dict, tmp_path: Path) -> None:
    ok = run(OPENSSL, "verify", "-CAfile", "root.pem", "-untrusted", "intermediate.pem",
             "leaf.pem", cwd=tmp_path)
    assert ok.returncode == 0 and "leaf.pem: OK" in ok.stdout, ok.stderr
    foreign = run(OPENSSL, "verify", "-CAfile", "tsa.pem", "leaf.pem", cwd=tmp_path)
    assert foreign.returncode != 0

    text = run(OPENSSL, "x509", "-in", "leaf.pem", "-noout", "-text", "-dates",
               cwd=tmp_path).stdout
    before = re.search(r"notBefore=(.+)", text).group(1)  # type: ignore[union-attr]
    after = re.search(r"notAfter=(.+)", text).group(1)  # type: ignore[union-attr]
    fmt = "%b %d %H:%M:%S %Y %Z"
    spread = datetime.strptime(" ".join(after.split()), fmt) - datetime.strptime(
        " ".join(before.split()), fmt)
    assert spread.total_seconds() == 300
    for oid in ["1.3.6.1.4.1.57264.1.8", "1.3.6.1.4.1.57264.1.12", "1.3.6.1.4.1.57264.1.14",
                "1.3.6.1.4.1.57264.1.21", f"{OUR_ARC}.1", f"{OUR_ARC}.3"]:
        assert oid in text, oid
    assert "Code Signing" in text and "Digital Signature" in text
    # The job's workflow first (as Fulcio names it), then the token's subject.
    assert re.search(r"X509v3 Subject Alternative Name: critical\s+URI:http\S+/acme/app/"
                     r"\.github/workflows/release\.yml@refs/tags/v1\.2\.3, URI:repo:acme/app:ref:",
                     text)
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    assert len(leaf.subject) == 0


def test_openssl_verifies_the_signature_timestamp(signed: dict, tmp_path: Path) -> None:
    ok = run(OPENSSL, "ts", "-verify", "-data", "sig.bin", "-in", "ts.tsr", "-CAfile", "root.pem",
             "-untrusted", "tsa.pem", cwd=tmp_path)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "other.bin").write_bytes(b"another signature")
    bad = run(OPENSSL, "ts", "-verify", "-data", "other.bin", "-in", "ts.tsr", "-CAfile",
              "root.pem", "-untrusted", "tsa.pem", cwd=tmp_path)
    assert bad.returncode != 0


def test_openssl_ts_query_against_the_tsa_endpoint(service: Service, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("timestamp me")
    query = run(OPENSSL, "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out",
                "q.tsq", cwd=tmp_path)
    assert query.returncode == 0
    reply = service.post("/v1/timestamp", data=(tmp_path / "q.tsq").read_bytes(),
                         headers={"Content-Type": "application/timestamp-query"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "r.tsr").write_bytes(reply.content)
    (tmp_path / "tsa.pem").write_bytes((service.data_dir / "keys/tsa.pem").read_bytes())
    (tmp_path / "root.pem").write_bytes((service.data_dir / "keys/root.pem").read_bytes())
    text = run(OPENSSL, "ts", "-reply", "-in", "r.tsr", "-text", cwd=tmp_path).stdout
    assert "Status: Granted." in text
    ok = run(OPENSSL, "ts", "-verify", "-queryfile", "q.tsq", "-in", "r.tsr", "-CAfile",
             "root.pem", "-untrusted", "tsa.pem", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong_type = service.post("/v1/timestamp", data=b"x",
                              headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 400


@pytest.mark.parametrize("which", ["leaf", "intermediate", "root", "tsa"])
def test_pkilint_finds_no_errors(signed: dict, tmp_path: Path, which: str) -> None:
    done = run(str(BIN / "lint_pkix_cert"), "lint", "-s", "ERROR", "-f", "JSON",
               f"{which}.pem", cwd=tmp_path)
    # pkilint prints nothing when it cannot load the certificate (it once could not, with an
    # OID arc past 32 bits): no JSON is a failure, not a clean bill.
    assert done.stdout.strip(), done.stderr
    findings = json.loads(done.stdout)
    errors = [r for r in findings.get("results", []) if r.get("finding_descriptions")
              and not _web_url_heuristic(r)]
    assert not errors, json.dumps(errors, indent=1)[:2000]


# RFC 3986 absolute URI without an authority (scheme ":" path-rootless), which RFC 5280
# allows in a URI SAN: "a scheme and a scheme-specific-part".
RFC3986_NO_AUTHORITY = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?!/)(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})+")


def _web_url_heuristic(result: dict) -> bool:
    """pkilint checks a URI SAN with ``validators.url``, a web-URL test that refuses any
    URI without ``//host``. The token's subject (``repo:acme/app:ref:…``) is such a URI, valid
    under RFC 3986 and RFC 5280; that one finding is pkilint's heuristic, not an error."""
    [finding] = result["finding_descriptions"]
    value = finding.get("message", "").removeprefix('Invalid URI syntax: "').removesuffix('"')
    return (finding["code"] == "pkix.invalid_uri_syntax"
            and result["node_path"].endswith("subjectAltName.1.uniformResourceIdentifier")
            and RFC3986_NO_AUTHORITY.fullmatch(value) is not None)


def test_trust_root_is_a_sigstore_trusted_root(service: Service, tmp_path: Path) -> None:
    body = service.get("/v1/trust-root").json()
    assert body["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    chain = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
             for c in body["certificateAuthorities"][0]["certChain"]["certificates"]]
    root = (service.data_dir / "keys/root.pem").read_bytes()
    assert chain[-1].public_bytes(Encoding.PEM) == root
    assert len(body["timestampAuthorities"][0]["certChain"]["certificates"]) >= 2
    assert NAME  # the module's artifact name is shared with the flow tests
