"""Regenerate the adversarial test assets: real objects, good and broken, named for what they show.

Run from the repository root: ``.venv/bin/python tests/assets/make_assets.py``. Everything is
made with ``cryptography`` and PyJWT, and the foreign bundle by a real ``signer`` service run
in a temporary directory (so it is a complete bundle of the current format, from a CA and
logs that no test service trusts). No private key is written here: keys live only in this
script's memory. Tokens are either refused before any time check (alg, issuer, shape) or
deliberately expired (``exp`` in 2021), so they never age into validity.

Tokens whose refusal depends on the test issuer (its URL, its keys, the current time) are
made at test time by ``tests/adversarial/builders.py`` instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
EXPIRED = datetime(2021, 6, 1, tzinfo=UTC)
FOREIGN_NAME = "ghcr.io/acme/app"
FOREIGN_DIGEST = hashlib.sha256(b"signed by a foreign signer service").hexdigest()


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def write(name: str, data: str | bytes) -> None:
    path = HERE / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    print(f"wrote {path.relative_to(ROOT)}")


# -- CSRs ---------------------------------------------------------------------------------------
def csr(key: object, *, subject: x509.Name | None = None,
        extensions: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
        attributes: list[tuple[ObjectIdentifier, bytes]] = ()) -> x509.CertificateSigningRequest:  # type: ignore[assignment]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical)
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


def pem(request: x509.CertificateSigningRequest) -> str:
    return request.public_bytes(Encoding.PEM).decode()


def make_csrs() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    write("csr-p256-good.pem", pem(csr(p256)))
    write("csr-rsa2048.pem", pem(csr(rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048))))
    write("csr-p384.pem", pem(csr(ec.generate_private_key(ec.SECP384R1()))))
    write("csr-p521.pem", pem(csr(ec.generate_private_key(ec.SECP521R1()))))
    write("csr-secp256k1.pem", pem(csr(ec.generate_private_key(ec.SECP256K1()))))
    write("csr-ed25519.pem", pem(csr(ed25519.Ed25519PrivateKey.generate())))
    # Proof of possession fails: the body names one key, another key signed it.
    body_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    good = csr(body_key)
    forged = csr(other_key)
    write("csr-p256-signed-by-another-key.pem", _swap_csr_key(good, forged))
    der = bytearray(good.public_bytes(Encoding.DER))
    der[-3] ^= 0x01
    write("csr-p256-bad-signature.pem", _pem_block("CERTIFICATE REQUEST", bytes(der)))
    write("csr-p256-requests-san-uri.pem", pem(csr(p256, extensions=[(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
            "repo:victim/app:ref:refs/heads/main")]), True)])))
    write("csr-p256-requests-san-dns-email.pem", pem(csr(p256, extensions=[(
        x509.SubjectAlternativeName([x509.DNSName("example.com"),
                                     x509.RFC822Name("admin@example.com")]), False)])))
    write("csr-p256-requests-ca.pem", pem(csr(p256, extensions=[(
        x509.BasicConstraints(ca=True, path_length=None), True)])))
    write("csr-p256-requests-key-cert-sign.pem", pem(csr(p256, extensions=[(x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False), True)])))
    write("csr-p256-requests-provenance-oid.pem", pem(csr(p256, extensions=[(
        x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.12"),
                                   b"\x0c\x1ahttps://github.com/victim/app"), False)])))
    write("csr-p256-challenge-password.pem", pem(csr(p256, attributes=[(
        x509.oid.AttributeOID.CHALLENGE_PASSWORD, b"hunter2")])))
    # A subject is allowed in a CSR but never copied: the CA decides the subject (empty).
    write("csr-p256-with-subject.pem", pem(csr(p256, subject=x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "signer root CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signer")]))))
    big = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * 60)
                     for _ in range(160)])
    write("csr-p256-oversized.pem", pem(csr(p256, subject=big)))
    write("csr-p256-der-not-pem.der", good.public_bytes(Encoding.DER))
    # Well-formed DER that the parser reads but cannot use (PKCS#10 v2; a key algorithm and
    # a curve that cryptography does not know): must be a 400, not an exception.
    good_der = good.public_bytes(Encoding.DER)
    for label, old, new in (
        ("version-2", bytes.fromhex("020100"), bytes.fromhex("020101")),
        ("unknown-key-algorithm-oid", bytes.fromhex("06072a8648ce3d0201"),
         bytes.fromhex("06072a8648ce3d0203")),
        ("prime239v1-curve", bytes.fromhex("06082a8648ce3d030107"),
         bytes.fromhex("06082a8648ce3d030104")),
    ):
        assert good_der.count(old) >= 1
        write(f"csr-{label}.pem", _pem_block("CERTIFICATE REQUEST",
                                             good_der.replace(old, new, 1)))
    write("csr-p256-truncated.pem", pem(good)[:200] + "\n-----END CERTIFICATE REQUEST-----\n")
    write("csr-not-a-csr-certificate.pem", _self_signed_leaf(p256).public_bytes(
        Encoding.PEM).decode())


def _pem_block(label: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def _swap_csr_key(named: x509.CertificateSigningRequest,
                  signer: x509.CertificateSigningRequest) -> str:
    """The signer's CSR with its public key replaced by the named CSR's (signature kept)."""
    signer_der = signer.public_bytes(Encoding.DER)
    old = signer.public_key().public_bytes(Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    new = named.public_key().public_bytes(Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    assert len(old) == len(new) and old in signer_der
    return _pem_block("CERTIFICATE REQUEST", signer_der.replace(old, new))


# -- certificates -------------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signer"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _leaf_builder(key: ec.EllipticCurvePublicKey, issuer: x509.Name, start: datetime,
                  identity: str) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer)
            .public_key(key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(minutes=5))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(identity)]), True))


def _self_signed_leaf(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    builder = _leaf_builder(key.public_key(), x509.Name([]), datetime.now(UTC),
                            "repo:acme/app:ref:refs/tags/v1.2.3")
    return builder.sign(key, hashes.SHA256())


def make_certificates() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(_name("signer root CA"))
            .issuer_name(_name("signer root CA")).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(root_key, hashes.SHA256()))
    write("cert-foreign-root-same-subject.pem", root.public_bytes(Encoding.PEM))
    # Same subject names as the service's own CAs: only the keys tell them apart.
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = (x509.CertificateBuilder().subject_name(_name("signer intermediate CA"))
             .issuer_name(root.subject).public_key(inter_key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now)
             .not_valid_after(now + timedelta(days=1825))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
             .sign(root_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf_builder(leaf_key.public_key(), inter.subject, now,
                         "repo:acme/app:ref:refs/tags/v1.2.3").sign(inter_key, hashes.SHA256())
    write("cert-leaf-from-foreign-ca.pem", leaf.public_bytes(Encoding.PEM))
    write("cert-leaf-self-signed.pem", _self_signed_leaf(leaf_key).public_bytes(Encoding.PEM))
    write("cert-leaf-from-foreign-ca-expired-2021.pem", _leaf_builder(
        leaf_key.public_key(), inter.subject, EXPIRED, "repo:acme/app:ref:refs/tags/v1.2.3"
    ).sign(inter_key, hashes.SHA256()).public_bytes(Encoding.PEM))


# -- tokens -------------------------------------------------------------------------------------
def _claims(**overrides: object) -> dict[str, object]:
    start = int(EXPIRED.timestamp())
    claims: dict[str, object] = {
        "iss": GITHUB_ISSUER, "aud": "signer", "sub": "repo:acme/app:ref:refs/tags/v1.2.3",
        "repository": "acme/app", "repository_owner": "acme", "ref": "refs/tags/v1.2.3",
        "iat": start, "nbf": start, "exp": start + 300}
    claims.update(overrides)
    return claims


def _unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes = b""
              ) -> str:
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode())]
    return b".".join([*parts, b64url(signature)]).decode()


def make_tokens() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    for alg in ("None", "NONE", "nOnE", ""):
        write(f"token-alg-{alg or 'empty'}-unsigned.jwt",
              _unsigned({"alg": alg, "typ": "JWT"}, _claims()))
    write("token-no-alg-header.jwt", _unsigned({"typ": "JWT"}, _claims()))
    # Key confusion: HMAC keyed with the issuer's RSA public key (a verifier that passed the
    # JWKS key to HMAC would accept it).
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(_claims()).encode())
        mac = hmac.new(public_pem, header + b"." + payload, digest).digest()
        write(f"token-{alg.lower()}-keyed-with-rsa-public-key.jwt",
              b".".join([header, payload, b64url(mac)]).decode())
    for label, iss in (("suffix-evil", GITHUB_ISSUER + ".evil"),
                       ("userinfo", "https://token.actions.githubusercontent.com@evil.example"),
                       ("http-scheme", "http://token.actions.githubusercontent.com"),
                       ("trailing-slash", GITHUB_ISSUER + "/"),
                       ("uppercase-host", "https://TOKEN.actions.githubusercontent.com"),
                       ("unicode-dot", "https://token.actions.githubusercontent\u3002com")):
        write(f"token-lookalike-issuer-{label}-expired-2021.jwt",
              jwt.encode(_claims(iss=iss), key, algorithm="RS256", headers={"kid": "asset"}))
    write("token-malformed-two-segments.txt", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0")
    write("token-malformed-header-not-json.txt",
          b64url(b"not json").decode() + "." + b64url(b"{}").decode() + ".c2ln")
    write("token-malformed-header-is-a-list.txt",
          b64url(b'["RS256"]').decode() + "." + b64url(b"{}").decode() + ".c2ln")
    write("token-malformed-payload-not-json.txt",
          b64url(b'{"alg":"RS256"}').decode() + "." + b64url(b"\xff\xfe").decode() + ".c2ln")
    write("token-malformed-not-base64.txt", "!!!.@@@.###")


# -- a bundle from a foreign signer service -----------------------------------------------------
def make_foreign_bundle() -> None:
    sys.path.insert(0, str(ROOT))
    from signer.artifact import parse_ref
    from signer.client import Client
    from signer.operations import sign
    from tests.fakes.github_oidc import FakeGitHubIssuer
    from tests.service_process import Service, init

    issuer = FakeGitHubIssuer()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        svc = Service(data, init(data), issuer.url)
        svc.start()
        try:
            tenant = svc.tenant()
            client = Client(svc.url, tenant.api_key)
            ref = parse_ref(f"{FOREIGN_NAME}@sha256:{FOREIGN_DIGEST}")
            out = Path(tmp) / "b.json"
            signed = sign(client, tenant.namespace, ref, {}, out)
            write("bundle-from-foreign-service.sigstore.json", out.read_text())
            write("trusted_root-foreign-service.json", client.trust_root())
            write("bundle-from-foreign-service.meta.json", json.dumps({
                "name": str(ref), "issuer": signed.issuer, "identity": signed.identity},
                indent=2) + "\n")
            bundle = json.loads(out.read_text())
        finally:
            svc.stop()
            issuer.stop()
    write("bundle-not-json.txt", "this is not a bundle\n")
    write("bundle-empty-object.json", "{}\n")
    write("bundle-wrong-media-type.json", json.dumps(
        {**bundle, "mediaType": "application/vnd.dev.sigstore.bundle.v0.1+json"}))
    no_cert = json.loads(json.dumps(bundle))
    no_cert["verificationMaterial"].pop("certificate", None)
    write("bundle-without-certificate.json", json.dumps(no_cert))
    sha512 = json.loads(json.dumps(bundle))
    sha512["messageSignature"]["messageDigest"]["algorithm"] = "SHA2_512"
    write("bundle-sha512-digest.json", json.dumps(sha512))
    no_ts = json.loads(json.dumps(bundle))
    no_ts["verificationMaterial"].pop("timestampVerificationData", None)
    write("bundle-without-timestamp.json", json.dumps(no_ts))


if __name__ == "__main__":
    make_csrs()
    make_certificates()
    make_tokens()
    make_foreign_bundle()
