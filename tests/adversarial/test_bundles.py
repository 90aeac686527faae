"""Tampered bundles never verify; stolen or foreign certificates are never accepted.

Bundles are made by the live service (so they have the current format: timestamp, SCT, log
entry) and then tampered with, field by field; verification runs offline with the exported
trust root through ``signer.operations.verify``, the function behind
``signer artifact verify --bundle``. A few cases also go through the CLI, for exit codes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from signer import trust
from signer.artifact import parse_ref
from signer.client import Client
from signer.errors import SignerError
from signer.operations import sign, verify
from signer.service.keys import sign_certificate
from tests.adversarial.builders import (
    assert_problem,
    asset_path,
    asset_text,
    new_csr,
    request_cert,
    sign_digest,
    stored,
)
from tests.service_process import Service, Tenant
from tests.softhsm import service_key

pytestmark = pytest.mark.integration

NAME = "ghcr.io/acme/tampered"


class Signed:
    def __init__(self, service: Service, tenant: Tenant, tmp: Path, label: str) -> None:
        digest = hashlib.sha256(label.encode()).hexdigest()
        self.ref = parse_ref(f"{NAME}@sha256:{digest}")
        self.path = tmp / f"{label}.sigstore.json"
        self.signed = sign(Client(service.url, tenant.api_key), tenant.namespace, self.ref, {},
                           self.path)
        self.json = json.loads(self.path.read_text())
        self.issuer = self.signed.issuer


@pytest.fixture(scope="module")
def pair(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[Signed, Signed]:
    """Two signatures made by the live service (read-only for the tests: they mutate copies)."""
    tenant, tmp = service.tenant(), tmp_path_factory.mktemp("pair")
    return Signed(service, tenant, tmp, "a"), Signed(service, tenant, tmp, "b")


@pytest.fixture(scope="module")
def trust_material(service: Service) -> trust.TrustMaterial:
    return trust.parse(Client(service.url).trust_root())


def verdict(material: trust.TrustMaterial, signed: Signed, data: Any, tmp: Path,
            name: str = "mutant") -> str:
    """'ok', or the reason it failed (a failed step, or a refusal to parse)."""
    path = tmp / f"{name}.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    try:
        report = verify(signed.ref, material, signed.issuer, bundle_path=path)
    except SignerError as exc:
        return f"refused: {exc.detail}"
    return "ok" if report.ok else report.results[0].error or "failed"


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path, node


def _mutated(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    text = str(value)
    if text.isdigit():
        return str(int(text) + 1)
    try:
        raw = bytearray(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raw = bytearray()
    if raw:
        raw[len(raw) // 2] ^= 0x01
        return base64.b64encode(bytes(raw)).decode()
    return text + "x"


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    mutant = copy.deepcopy(data)
    node = mutant
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return mutant


def test_every_field_tampered_fails(service: Service, pair: tuple[Signed, Signed],
                                    trust_material: trust.TrustMaterial, tmp_path: Path) -> None:
    """Every leaf of the bundle's JSON, changed on its own (a bit flipped in base64 values,
    numbers incremented, text extended): none of the mutants verifies."""
    a, _ = pair
    assert verdict(trust_material, a, a.json, tmp_path) == "ok"
    passed = []
    for path, value in _leaves(a.json):
        if verdict(trust_material, a, _set(a.json, path, _mutated(value)), tmp_path) == "ok":
            passed.append(".".join(map(str, path)))
    assert passed == [], f"verified although tampered: {passed}"


@pytest.mark.parametrize(("part", "path"), [
    ("certificate", ("verificationMaterial", "certificate")),
    ("timestamp", ("verificationMaterial", "timestampVerificationData")),
    ("log entries", ("verificationMaterial", "tlogEntries")),
    ("signature", ("messageSignature", "signature")),
])
def test_parts_swapped_from_another_signature_fail(
    service: Service, pair: tuple[Signed, Signed], trust_material: trust.TrustMaterial,
    tmp_path: Path, part: str, path: tuple[str, ...],
) -> None:
    a, b = pair
    donor = b.json
    for key in path:
        donor = donor[key]
    result = verdict(trust_material, a, _set(a.json, path, donor), tmp_path)
    assert result != "ok", part
    assert "step" in result or result.startswith("refused"), result


def test_a_bundle_from_a_foreign_service_fails_here(service: Service,
                                                    trust_material: trust.TrustMaterial,
                                                    tmp_path: Path) -> None:
    meta = json.loads(asset_text("bundle-from-foreign-service.meta.json"))
    ref = parse_ref(meta["name"])
    bundle = asset_path("bundle-from-foreign-service.sigstore.json")
    foreign = trust.read(asset_path("trusted_root-foreign-service.json"))
    # The control: under its own (foreign) trust root, the bundle is good ...
    assert verify(ref, foreign, meta["issuer"], bundle_path=bundle).ok
    # ... under ours it chains to a root we do not trust.
    report = verify(ref, trust_material, meta["issuer"], bundle_path=bundle)
    assert not report.ok and "step" in (report.results[0].error or "")


# -- certificates the service must not accept -------------------------------------------------
def _stolen_leaf_used_late(service: Service, tenant: Tenant, minutes_ago: int = 10
                           ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf of this service's CA for this tenant, valid 5 minutes, ``minutes_ago``.

    Made with the intermediate key from the data directory: the certificate a thief who
    kept a CI job's key and certificate would hold ten minutes later.
    """
    key, csr = new_csr()
    issued = request_cert(service, tenant.api_key, tenant.namespace, csr)
    live = x509.load_pem_x509_certificate(issued.json()["certificate_chain"][0].encode())
    ca_key = service_key(service.data_dir / "keys", "intermediate")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    builder = (x509.CertificateBuilder().subject_name(live.subject).issuer_name(live.issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(minutes=5)))
    for ext in live.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return key, sign_certificate(builder, ca_key)


def test_a_leaf_used_after_its_five_minutes_is_refused(service: Service, tenant: Tenant
                                                       ) -> None:
    key, late = _stolen_leaf_used_late(service, tenant)
    digest = hashlib.sha256(b"late").hexdigest()
    before = stored(service, tenant.namespace)
    response = service.post("/v1/signatures", tenant.api_key, json={
        "namespace": tenant.namespace, "name": f"{NAME}@sha256:{digest}",
        "certificate": late.public_bytes(Encoding.PEM).decode(),
        "signature": sign_digest(key, digest)})
    assert_problem(response, 400, "expired")
    assert stored(service, tenant.namespace) == before


def test_a_bundle_timestamped_after_the_leaf_expired_fails(
    service: Service, tenant: Tenant, pair: tuple[Signed, Signed],
    trust_material: trust.TrustMaterial, tmp_path: Path,
) -> None:
    """The thief signs offline and gets a fresh timestamp from the public TSA endpoint."""
    a, _ = pair
    key, late = _stolen_leaf_used_late(service, tenant)
    signature = base64.b64decode(sign_digest(key, a.ref.digest))
    query = _timestamp_query(signature)
    reply = requests.post(f"{service.url}/v1/timestamp", data=query, timeout=30,
                          headers={"Content-Type": "application/timestamp-query"})
    assert reply.status_code == 200
    forged = copy.deepcopy(a.json)
    forged["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
        late.public_bytes(Encoding.DER)).decode()
    forged["messageSignature"]["signature"] = base64.b64encode(signature).decode()
    forged["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = [
        {"signedTimestamp": base64.b64encode(reply.content).decode()}]
    result = verdict(trust_material, a, forged, tmp_path)
    assert result != "ok" and "certificate chain" in result, result


def _timestamp_query(data: bytes) -> bytes:
    from asn1crypto import tsp

    return tsp.TimeStampReq({
        "version": 1, "cert_req": True,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(data).digest()}}).dump()


@pytest.mark.parametrize("asset", ["cert-leaf-from-foreign-ca.pem", "cert-leaf-self-signed.pem",
                                   "cert-leaf-from-foreign-ca-expired-2021.pem",
                                   "cert-foreign-root-same-subject.pem"])
def test_foreign_certificates_are_refused(service: Service, tenant: Tenant, asset: str) -> None:
    digest = hashlib.sha256(b"foreign").hexdigest()
    before = stored(service, tenant.namespace)
    response = service.post("/v1/signatures", tenant.api_key, json={
        "namespace": tenant.namespace, "name": f"{NAME}@sha256:{digest}",
        "certificate": asset_text(asset), "signature": base64.b64encode(b"0" * 70).decode()})
    assert_problem(response, 400, "not issued by this service's CA")
    assert stored(service, tenant.namespace) == before


@pytest.mark.parametrize("which", ["root", "intermediate", "tsa"])
def test_the_services_own_ca_certificates_are_not_leaves(service: Service, tenant: Tenant,
                                                         which: str) -> None:
    digest = hashlib.sha256(b"ca").hexdigest()
    pem = (service.data_dir / "keys" / f"{which}.pem").read_text()
    response = service.post("/v1/signatures", tenant.api_key, json={
        "namespace": tenant.namespace, "name": f"{NAME}@sha256:{digest}",
        "certificate": pem, "signature": base64.b64encode(b"0" * 70).decode()})
    assert_problem(response, 400)


@pytest.mark.parametrize(("label", "signature", "status"), [
    ("empty", "", 400), ("not base64", "not base64!", 400),
    ("base64 with line breaks", base64.encodebytes(b"0" * 70).decode(), 400),
    ("300 bytes", base64.b64encode(b"0" * 300).decode(), 400),
    ("over the schema limit", "A" * 600, 422),
])
def test_malformed_signatures_are_refused(service: Service, tenant: Tenant, label: str,
                                          signature: str, status: int) -> None:
    digest = hashlib.sha256(b"sig").hexdigest()
    _key, csr = new_csr()
    leaf = request_cert(service, tenant.api_key, tenant.namespace, csr).json()[
        "certificate_chain"][0]
    before = stored(service, tenant.namespace)
    response = service.post("/v1/signatures", tenant.api_key, json={
        "namespace": tenant.namespace, "name": f"{NAME}@sha256:{digest}",
        "certificate": leaf, "signature": signature})
    assert_problem(response, status)
    assert stored(service, tenant.namespace) == before


# -- broken bundle files through the CLI (no service needed: offline) -------------------------
@pytest.mark.parametrize("asset", ["bundle-not-json.txt", "bundle-empty-object.json",
                                   "bundle-wrong-media-type.json",
                                   "bundle-without-certificate.json",
                                   "bundle-sha512-digest.json"])
def test_broken_bundle_files_fail_cleanly_in_the_cli(asset: str, tmp_path: Path) -> None:
    import subprocess

    from tests.service_process import SIGNER, clean_env

    meta = json.loads(asset_text("bundle-from-foreign-service.meta.json"))
    done = subprocess.run(
        [SIGNER, "artifact", "verify", "--name", meta["name"], "--bundle",
         str(asset_path(asset)), "--trust-root", str(asset_path("trusted_root-foreign-service.json")),
         "--certificate-oidc-issuer", meta["issuer"]],
        capture_output=True, text=True, env=clean_env(SIGNER_API="http://127.0.0.1:9"),
        timeout=60, cwd=tmp_path)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip()
    assert "verified:" not in done.stdout


def test_a_bundle_without_timestamp_verifies_by_its_promised_time(tmp_path: Path) -> None:
    """No RFC 3161 timestamp, but a Rekor v1 entry whose inclusion promise signs its
    integrated time: that is a verified time (the bundle specification; sigstore-python
    agrees). It used to be refused when signer required a TSA timestamp."""
    import subprocess

    from tests.service_process import SIGNER, clean_env

    meta = json.loads(asset_text("bundle-from-foreign-service.meta.json"))
    done = subprocess.run(
        [SIGNER, "artifact", "verify", "--name", meta["name"], "--bundle",
         str(asset_path("bundle-without-timestamp.json")), "--trust-root",
         str(asset_path("trusted_root-foreign-service.json")),
         "--certificate-oidc-issuer", meta["issuer"], "--certificate-identity", meta["identity"]],
        capture_output=True, text=True, env=clean_env(SIGNER_API="http://127.0.0.1:9"),
        timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "verified:" in done.stdout
