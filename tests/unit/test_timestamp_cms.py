"""The RFC 3161 CMS check without OpenSSL (`signer.verification.cms` and the verifier's
`_TimestampCheck`) against OpenSSL's (rfc3161-client's ``pkcs7_verify``): on tokens built
here in every shape that matters, whatever it accepts OpenSSL accepts, and the verdict with
a warm path cache is the verdict without one. And the real tokens of the assets (ours,
Sigstore's, GitHub's) all have the shape it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client import decode_timestamp_response

from signer import bundle, trust
from signer.errors import UsageError
from signer.service.keys import FileKey
from signer.service.tsa import TimestampAuthority
from signer.trust import Authority
from signer.verification import cms
from signer.verification.verifier import _TimestampCheck

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MESSAGE = b"the signature a timestamp is over"
NOW = datetime.now(UTC).replace(microsecond=0)

TST_INFO_OID = "060b2a864886f70d0109100104"
DIGEST_OIDS = {"sha256": "0609608648016503040201", "sha384": "0609608648016503040202",
               "sha512": "0609608648016503040203"}
ECDSA_WITH = {"sha256": "06082a8648ce3d040302", "sha384": "06082a8648ce3d040303",
              "sha512": "06082a8648ce3d040304"}
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def der(tag: int, *parts: bytes | str) -> bytes:
    body = b"".join(bytes.fromhex(p) if isinstance(p, str) else p for p in parts)
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def integer(value: int) -> bytes:
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def attribute(oid: str, *values: bytes) -> bytes:
    return der(0x30, oid, der(0x31, *values))


def content_type() -> bytes:
    return attribute("06092a864886f70d010903", bytes.fromhex(TST_INFO_OID))


def message_digest(value: bytes) -> bytes:
    return attribute("06092a864886f70d010904", der(0x04, value))


def signing_certificate_v2(leaf: x509.Certificate) -> bytes:
    ess = der(0x30, der(0x30, der(0x30, der(0x04, hashlib.sha256(
        leaf.public_bytes(Encoding.DER)).digest()))))
    return attribute("060b2a864886f70d010910022f", ess)


def signing_time() -> bytes:
    return attribute("06092a864886f70d010905", der(0x17, NOW.strftime("%y%m%d%H%M%SZ").encode()))


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    leaf: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def authority(self) -> Authority:
        return Authority((self.leaf, self.root), NOW - timedelta(days=30))


def _certificate(subject: str, issuer: x509.Certificate | None, key: ec.EllipticCurvePrivateKey,
                 signer: ec.EllipticCurvePrivateKey, life: tuple[timedelta, timedelta]
                 ) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + life[0]).not_valid_after(NOW + life[1]))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                                  True))
    return builder.sign(signer, hashes.SHA256())


def make_pki(root_ends: timedelta = timedelta(days=10)) -> Pki:
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP384R1())
    root = _certificate("cms test root", None, root_key, root_key, (-timedelta(days=10),
                                                                     root_ends))
    leaf = _certificate("cms test TSA", root, key, root_key, (-timedelta(hours=1),
                                                              timedelta(hours=1)))
    return Pki(root, leaf, key)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def tst_info(at: datetime, message: bytes = MESSAGE) -> bytes:
    return tsp.TSTInfo({
        "version": 1, "policy": "1.2.3.4",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(message).digest()},
        "serial_number": 7, "gen_time": at}).dump()


def token(pki: Pki, *, at: datetime = NOW, digest: str = "sha256", set_digest: str | None = None,
          null_params: bool = False, signature_algorithm: str | None = None,
          attributes: Callable[[bytes], list[bytes]] | None = None,
          certificates: tuple[x509.Certificate, ...] | None = None, bag: bool = True,
          sid: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None,
          version: int = 3, signer_version: int = 1, content: bytes | None = None,
          unsigned: bool = False, crls: bool = False, sign_as_tagged: bool = False,
          sort_attributes: bool = True) -> bytes:
    """A TimeStampResp as a TSA would make it; each argument bends one part."""
    tst = tst_info(at)
    digest_of_tst = hashlib.new(digest, tst).digest()
    attrs = (attributes or (lambda d: [content_type(), message_digest(d),
                                      signing_certificate_v2(pki.leaf)]))(digest_of_tst)
    if sort_attributes:  # DER's order for a SET OF
        attrs = sorted(attrs)
    signed_set = der(0x31, *attrs)
    signed = b"\xa0" + signed_set[1:] if sign_as_tagged else signed_set
    signature = (key or pki.key).sign(signed, ec.ECDSA(HASHES[digest]))

    def algorithm(name: str) -> bytes:
        return der(0x30, DIGEST_OIDS[name], "0500" if null_params else "")

    named = sid or pki.leaf
    signer_info = der(
        0x30, integer(signer_version),
        der(0x30, named.issuer.public_bytes(), integer(named.serial_number)),
        algorithm(digest), b"\xa0" + signed_set[1:],
        der(0x30, ECDSA_WITH[signature_algorithm or digest]), der(0x04, signature),
        der(0xA1, signing_time()) if unsigned else b"")
    embedded = (pki.leaf,) if certificates is None else certificates
    signed_data = der(
        0x30, integer(version), der(0x31, algorithm(set_digest or digest)),
        der(0x30, TST_INFO_OID, der(0xA0, der(0x04, content or tst))),
        der(0xA0, *sorted(c.public_bytes(Encoding.DER) for c in embedded)) if bag else b"",
        der(0xA1, pki.root.public_bytes(Encoding.DER)) if crls else b"",
        der(0x31, signer_info))
    content_info = der(0x30, "06092a864886f70d010702", der(0xA0, signed_data))
    return der(0x30, der(0x30, integer(0)), content_info)


STRANGER = make_pki()
Options = dict[str, object]
# Each shape: the token() arguments that make it, for a PKI.
SHAPES: dict[str, Callable[[Pki], Options]] = {
    "usual": lambda p: {},
    "sha384": lambda p: {"digest": "sha384"},
    "sha512": lambda p: {"digest": "sha512"},
    "digest with NULL parameters": lambda p: {"null_params": True},
    "signing time": lambda p: {
        "attributes": lambda d: [content_type(), signing_time(), message_digest(d)]},
    "no certificate bag": lambda p: {"bag": False},
    "empty certificate bag": lambda p: {"certificates": ()},
    "leaf and root embedded": lambda p: {"certificates": (p.leaf, p.root)},
    "another certificate embedded": lambda p: {"certificates": (p.leaf, STRANGER.leaf)},
    "attributes out of DER order": lambda p: {
        "attributes": lambda d: [message_digest(d), content_type()], "sort_attributes": False},
    "message digest of something else": lambda p: {
        "attributes": lambda d: [content_type(), message_digest(bytes(len(d)))]},
    "TSTInfo changed after signing": lambda p: {"content": tst_info(NOW, b"another message")},
    "signed by another key": lambda p: {"key": STRANGER.key},
    "signature over the [0] form": lambda p: {"sign_as_tagged": True},
    "two message digest values": lambda p: {
        "attributes": lambda d: [content_type(), attribute("06092a864886f70d010904",
                                                           der(0x04, d), der(0x04, d))]},
    "message digest twice": lambda p: {
        "attributes": lambda d: [content_type(), message_digest(d), message_digest(d)]},
    "another attribute": lambda p: {
        "attributes": lambda d: [content_type(), message_digest(d),
                                 attribute("06092a864886f70d010934", der(0x30, ""))]},
    "no content type": lambda p: {"attributes": lambda d: [message_digest(d)]},
    "signature algorithm of another digest": lambda p: {"signature_algorithm": "sha384"},
    "digest algorithms disagree": lambda p: {"set_digest": "sha384"},
    "unsigned attributes": lambda p: {"unsigned": True},
    "CRLs": lambda p: {"crls": True},
    "names the root": lambda p: {"sid": p.root},
    "SignedData version 1": lambda p: {"version": 1},
    "SignerInfo version 3": lambda p: {"signer_version": 3},
}


def _shape(pki: Pki, name: str) -> bytes:
    return token(pki, **SHAPES[name](pki))  # type: ignore[arg-type]


def _verdicts(check: _TimestampCheck, response_der: bytes) -> tuple[bool, bool, bool]:
    """(without OpenSSL, OpenSSL, the whole check) on one response."""
    response = decode_timestamp_response(response_der)
    info = response.tst_info
    read = cms.read(cms.token_of_response(response_der) or b"")
    ours = read is not None and check._all_valid(info.gen_time) and check._signed_by_leaf(read)
    openssl = check._openssl_verified(response, info.gen_time)
    return ours, openssl, check.verify_message(response, info, read, MESSAGE)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_accepted_without_openssl_only_what_openssl_accepts(pki: Pki, shape: str) -> None:
    response_der = _shape(pki, shape)
    try:
        decode_timestamp_response(response_der)
    except ValueError:
        # The verifier refuses it at decoding (step 2), before either path could judge it:
        # only this shape may be unreadable, else the comparison below must run.
        assert shape == "attributes out of DER order"
        return
    cold = _TimestampCheck(pki.authority)
    ours, openssl, whole = _verdicts(cold, response_der)
    assert openssl or not ours
    # Warm: OpenSSL has accepted the leaf's path for this TSA (each set of embedded
    # certificates); the verdict on this token is the same as without that.
    warm = _TimestampCheck(pki.authority)
    for bag in ((pki.leaf,), (), (pki.leaf, pki.root)):
        assert _verdicts(warm, token(pki, certificates=bag))[2]
    assert warm._paths
    assert _verdicts(warm, response_der) == (ours, openssl, whole)


@pytest.mark.parametrize("shape", ["usual", "sha384", "sha512", "digest with NULL parameters",
                                   "signing time", "no certificate bag", "empty certificate bag",
                                   "leaf and root embedded", "SignedData version 1"])
def test_the_usual_shapes_need_openssl_once(pki: Pki, shape: str) -> None:
    check = _TimestampCheck(pki.authority)
    response_der = _shape(pki, shape)
    assert _verdicts(check, response_der) == (True, True, True)
    assert len(check._paths) == 1
    response = decode_timestamp_response(response_der)
    check._openssl_verified = lambda *_: pytest.fail("OpenSSL asked again")  # type: ignore[method-assign]
    read = cms.read(cms.token_of_response(response_der) or b"")
    assert check.verify_message(response, response.tst_info, read, MESSAGE)
    assert not check.verify_message(response, response.tst_info, read, MESSAGE + b"!")


@pytest.mark.parametrize("shape", ["another certificate embedded", "another attribute",
                                   "unsigned attributes", "CRLs", "SignerInfo version 3",
                                   "two message digest values", "message digest twice",
                                   "no content type", "signature algorithm of another digest",
                                   "digest algorithms disagree"])
def test_other_shapes_go_to_openssl(pki: Pki, shape: str) -> None:
    response_der = _shape(pki, shape)
    try:
        decode_timestamp_response(response_der)
    except ValueError:
        assert shape == "attributes out of DER order"  # refused at decoding (step 2)
        return
    assert cms.read(cms.token_of_response(response_der) or b"") is None or shape in (
        "another certificate embedded",)
    check = _TimestampCheck(pki.authority)
    _verdicts(check, response_der)
    assert not check._paths


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=1), timedelta(minutes=20),
                                    timedelta(minutes=29, seconds=59), timedelta(minutes=30),
                                    timedelta(minutes=45)])
def test_a_warm_path_is_not_taken_once_a_trusted_certificate_expired(offset: timedelta) -> None:
    # The root expires 30 minutes from now, the leaf in an hour.
    short = make_pki(root_ends=timedelta(minutes=30))
    check = _TimestampCheck(short.authority)
    assert _verdicts(check, token(short))[2]
    late = token(short, at=NOW + offset)
    assert _verdicts(check, late) == _verdicts(_TimestampCheck(short.authority), late)
    assert _verdicts(check, late)[1] == (offset < timedelta(minutes=30))


def test_fractional_times_near_the_end_go_to_openssl() -> None:
    short = make_pki(root_ends=timedelta(minutes=30))
    check = _TimestampCheck(short.authority)
    end = NOW + timedelta(minutes=30)
    assert check._all_valid(end - timedelta(seconds=1))
    assert not check._all_valid(end - timedelta(seconds=0.5))
    assert not check._all_valid(end)
    start = max(short.leaf.not_valid_before_utc, short.root.not_valid_before_utc)
    assert check._all_valid(start)
    assert not check._all_valid(start + timedelta(seconds=0.5) - timedelta(seconds=1))


def _asset_timestamps() -> list[tuple[str, bytes]]:
    found = []
    for path in sorted(ASSETS.rglob("*.json")):
        try:
            artifact = bundle.parse(path.read_bytes())
        except UsageError:  # trust roots, metadata, broken bundles on purpose
            continue
        found += [(str(path.relative_to(ASSETS)), der) for der in artifact.timestamps]
    return found


def test_every_real_token_has_the_shape_read_without_openssl() -> None:
    timestamps = _asset_timestamps()
    assert {name.split("/")[0] for name, _ in timestamps} >= {"corpus", "sigstore-go",
                                                              "sigstore-python"}
    for name, response_der in timestamps:
        token_der = cms.token_of_response(response_der)
        assert token_der == decode_timestamp_response(response_der).time_stamp_token(), name
        assert cms.read(token_der) is not None, name


def test_the_github_token_needs_openssl_only_once() -> None:
    artifact = bundle.parse((ASSETS / "sigstore-go/bundle-github-staging.json").read_bytes())
    material = trust.read(ASSETS / "sigstore-go/trusted-root-github-staging.json")
    (response_der,) = artifact.timestamps
    response = decode_timestamp_response(response_der)
    read = cms.read(cms.token_of_response(response_der) or b"")
    checks = [_TimestampCheck(tsa) for tsa in material.tsas]
    good = [c for c in checks if c.verify_message(response, response.tst_info, read,
                                                  artifact.signature)]
    assert len(good) == 1
    assert good[0]._paths == {()}


def test_our_tsas_tokens_take_the_way_without_openssl(pki: Pki) -> None:
    # If the service's TSA ever issued another shape, offline verification would quietly
    # go back to OpenSSL for every token: this says so.
    tsa = TimestampAuthority(FileKey(pki.key), [pki.leaf, pki.root])
    check = _TimestampCheck(pki.authority)
    for _ in range(2):
        assert _verdicts(check, tsa.timestamp(MESSAGE)) == (True, True, True)
    assert check._paths == {(pki.leaf.public_bytes(Encoding.DER),)}
