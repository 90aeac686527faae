"""CSR assets: every one the CA must not certify is a 400 problem document, nothing stored.

RSA, P-384 and Ed25519 keys, a flipped signature bit and a requested SAN are also covered
with run-time CSRs by tests/integration/test_refusals.py; the assets add the rest.
"""

from __future__ import annotations

import base64

import pytest
from cryptography import x509

from tests.adversarial.builders import (
    assert_problem,
    asset_path,
    asset_text,
    request_cert,
    stored,
)
from tests.service_process import Service, Tenant

pytestmark = pytest.mark.integration

REFUSED = {
    "csr-p521.pem": "only ECDSA P-256",
    "csr-secp256k1.pem": "only ECDSA P-256",
    "csr-p256-signed-by-another-key.pem": "proves no possession",
    "csr-p256-bad-signature.pem": "",
    "csr-p256-requests-san-dns-email.pem": "extensions or attributes",
    "csr-p256-requests-ca.pem": "extensions or attributes",
    "csr-p256-requests-key-cert-sign.pem": "extensions or attributes",
    "csr-p256-requests-provenance-oid.pem": "extensions or attributes",
    "csr-p256-challenge-password.pem": "extensions or attributes",
    "csr-p256-oversized.pem": "well under",
    "csr-p256-truncated.pem": "PKCS#10",
    "csr-not-a-csr-certificate.pem": "PKCS#10",
}


@pytest.mark.parametrize("asset", sorted(REFUSED))
def test_csr_assets_are_refused(service: Service, tenant: Tenant, asset: str) -> None:
    before = stored(service, tenant.namespace)
    response = request_cert(service, tenant.api_key, tenant.namespace, asset_text(asset))
    assert_problem(response, 400, *([REFUSED[asset]] if REFUSED[asset] else []))
    assert stored(service, tenant.namespace) == before


def test_der_and_bare_base64_are_not_pem(service: Service, tenant: Tenant) -> None:
    der = asset_path("csr-p256-der-not-pem.der").read_bytes()
    for body in (base64.b64encode(der).decode(), der.decode("latin-1")):
        response = request_cert(service, tenant.api_key, tenant.namespace, body)
        assert_problem(response, 400, "PKCS#10")


def test_a_requested_subject_is_never_copied(service: Service, tenant: Tenant) -> None:
    """A CSR may carry a subject (here the root CA's name); the leaf's subject stays empty."""
    response = request_cert(service, tenant.api_key, tenant.namespace,
                            asset_text("csr-p256-with-subject.pem"))
    assert response.status_code == 200, response.text
    leaf = x509.load_pem_x509_certificate(response.json()["certificate_chain"][0].encode())
    assert leaf.subject == x509.Name([])
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False


def test_the_good_csr_asset_is_certified(service: Service, tenant: Tenant) -> None:
    response = request_cert(service, tenant.api_key, tenant.namespace,
                            asset_text("csr-p256-good.pem"))
    assert response.status_code == 200, response.text


PARSE_CSR_BUG = (
    "ca.parse_csr catches only ValueError/UnicodeEncodeError: x509.load_pem_x509_csr raises "
    "x509.InvalidVersion for a PKCS#10 version other than 1, and csr.public_key() raises "
    "cryptography.exceptions.UnsupportedAlgorithm for an unknown key algorithm or curve "
    "(found by tests/fuzz/test_parsers.py): a 500. Fix: catch (ValueError, "
    "UnicodeEncodeError, x509.InvalidVersion) at load and (ValueError, UnsupportedAlgorithm) "
    "at public_key(), both as the UsageError already there.")


@pytest.mark.parametrize("asset", ["csr-version-2.pem", "csr-unknown-key-algorithm-oid.pem",
                                   "csr-prime239v1-curve.pem"])
def test_csrs_the_parser_cannot_use_are_400(service: Service, tenant: Tenant, asset: str
                                            ) -> None:
    response = request_cert(service, tenant.api_key, tenant.namespace, asset_text(asset))
    assert_problem(response, 400)
