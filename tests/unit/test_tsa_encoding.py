"""The TSA's granted responses, byte for byte against the asn1crypto construction it used to
build per token (kept here, frozen, as the reference), with serial, time, nonce and signature
fixed so that two encodings of the same token must be equal."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signer.service import tsa as tsa_module
from signer.service.tsa import DEFAULT_POLICY_OID, TimestampAuthority, _der_set_of
from signer.transparency.sct import der_generalized_time, der_integer

GEN_TIME = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
DIGESTS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
# Absent, zero, high bit set (0x00 pad), 64-bit with its top bit set, all ones, negatives.
NONCES = [None, 0, 0x80, 2**63 + 12345, 2**64 - 1, -1, -129]
# What secrets.randbits draws; the serial is that + 1: 0x80 (a 0x00 pad), 16 bytes, and
# 2**127 (17 DER bytes). The nonce of timestamp() is the draw mod 2**64.
DRAWS = [0x7F, 2**126 + 3, 2**127 - 1]


# --- the reference: asn1crypto, as tsa.py built every token before DER assembly -----------


class _ReferenceResp(tsp.TimeStampResp):  # type: ignore[misc]
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _frozen(value: Any, **tagging: int) -> Any:
    frozen = type(value).load(value.dump())
    return frozen.retag(tagging) if tagging else frozen


def _reference(leaf_der: bytes, signer: Any, imprint: Any, nonce: int | None, cert_req: bool,
               serial: int, gen_time: datetime) -> bytes:
    leaf = asn1_x509.Certificate.load(leaf_der)
    sha256 = _frozen(algos.DigestAlgorithm({"algorithm": "sha256"}))
    tst_info = tsp.TSTInfo(
        {
            "version": 1,
            "policy": core.ObjectIdentifier(DEFAULT_POLICY_OID),
            "message_imprint": imprint,
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": _frozen(tsp.Accuracy({"seconds": 1})),
            "nonce": nonce,
            "tsa": _frozen(asn1_x509.GeneralName("directory_name", leaf.subject), explicit=0),
        }
    ).dump()
    message_digest = cms.CMSAttribute(
        {"type": "message_digest", "values": [hashlib.sha256(tst_info).digest()]}
    )
    signing_certificate = cms.CMSAttribute(
        {
            "type": "signing_certificate_v2",
            "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}]}],
        }
    )
    content_type = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]})
    signed_attrs = _frozen(
        cms.CMSAttributes(
            [_frozen(content_type), _frozen(message_digest), _frozen(signing_certificate)]
        )
    )
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": _frozen(
                cms.SignerIdentifier(
                    "issuer_and_serial_number",
                    {"issuer": leaf.issuer, "serial_number": leaf.serial_number},
                )
            ),
            "digest_algorithm": sha256,
            "signed_attrs": signed_attrs.retag({"implicit": 0}),
            "signature_algorithm": _frozen(
                algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
            ),
            "signature": signer.sign(signed_attrs.dump()),
        }
    )
    encapsulated = cms.EncapsulatedContentInfo(
        {
            "content_type": cms.ContentType("tst_info"),
            "content": core.ParsableOctetString(tst_info, explicit=0),
        }
    )
    certificates = _frozen(
        cms.CertificateSet([cms.CertificateChoices("certificate", leaf)]), implicit=0
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": _frozen(cms.DigestAlgorithms([sha256])),
            "encap_content_info": _frozen(encapsulated),
            "certificates": certificates if cert_req else None,
            "signer_infos": [_frozen(signer_info)],
        }
    )
    token = cms.ContentInfo(
        {"content_type": cms.ContentType("signed_data"),
         "content": _frozen(signed_data, explicit=0)}
    )
    status = _frozen(tsp.PKIStatusInfo({"status": "granted"}))
    return bytes(_ReferenceResp({"status": status, "time_stamp_token": _frozen(token)}).dump())


# --- fixtures: a TSA with a deterministic signer, fixed randomness and clock ----------------


@dataclass(frozen=True)
class DigestSigner:
    """A KeySigner whose "signature" is a digest of what it signs: deterministic, so equal
    responses mean equal signed attributes too. The length varies with the data (70–72
    bytes), as a DER ECDSA signature's does."""

    public_key: ec.EllipticCurvePublicKey

    def sign(self, data: bytes) -> bytes:
        digest = hashlib.sha512(data).digest()
        return digest + digest[: 6 + digest[0] % 3]


@dataclass(frozen=True)
class Authority:
    tsa: TimestampAuthority
    signer: DigestSigner
    leaf_der: bytes


@pytest.fixture(scope="module", params=["short", "long"])
def authority(request: pytest.FixtureRequest) -> Authority:
    # A long subject puts the TSTInfo and SignerInfo lengths past 255 (three-byte lengths).
    key = ec.generate_private_key(ec.SECP256R1())
    organization = "signer test TSA " * (1 if request.param == "short" else 20)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TSA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization.strip())])
    now = datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    signer = DigestSigner(key.public_key())
    return Authority(TimestampAuthority(signer, [leaf]), signer,
                     leaf.public_bytes(serialization.Encoding.DER))


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return GEN_TIME


@pytest.fixture(params=DRAWS)
def draw(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every secrets.randbits(bits) in tsa.py returns this draw (mod 2**bits); now() is
    GEN_TIME."""
    value: int = request.param
    monkeypatch.setattr(tsa_module.secrets, "randbits", lambda bits: value % 2**bits)
    monkeypatch.setattr(tsa_module, "datetime", _FixedClock)
    return value


def _request(algorithm: str, with_null: bool, nonce: int | None, cert_req: bool) -> bytes:
    digest_algorithm: dict[str, Any] = {"algorithm": algorithm}
    if with_null:  # what `openssl ts -query` sends
        digest_algorithm["parameters"] = core.Null()
    message: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": digest_algorithm,
                            "hashed_message": DIGESTS[algorithm](b"data").digest()},
        "cert_req": cert_req,
    }
    if nonce is not None:
        message["nonce"] = nonce
    return bytes(tsp.TimeStampReq(message).dump())


def _expected(authority: Authority, request_der: bytes, serial: int) -> bytes:
    request = tsp.TimeStampReq.load(request_der)
    return _reference(authority.leaf_der, authority.signer, request["message_imprint"],
                      request["nonce"].native, bool(request["cert_req"].native), serial,
                      GEN_TIME.replace(microsecond=0))


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("cert_req", [True, False])
@pytest.mark.parametrize("nonce", NONCES)
@pytest.mark.parametrize("with_null", [True, False])
@pytest.mark.parametrize("algorithm", sorted(DIGESTS))
def test_respond_is_byte_identical_to_the_reference(
    authority: Authority, draw: int, algorithm: str, with_null: bool, nonce: int | None,
    cert_req: bool
) -> None:
    request_der = _request(algorithm, with_null, nonce, cert_req)

    response = authority.tsa.respond(request_der)

    assert response == _expected(authority, request_der, serial=draw % 2**127 + 1)


def test_respond_echoes_a_non_minimal_length_imprint_in_der(
    authority: Authority, draw: int
) -> None:
    # BER long-form length on the MessageImprint (0x81 0x31 for 0x31): the token echoes its
    # value, encoded as DER wants it, as for the minimal request.
    der = _request("sha256", True, 7, True)
    start = der.index(b"\x30\x31\x30\x0d")
    request_der = bytearray(der[:start] + b"\x30\x81" + der[start + 1:])
    request_der[1] += 1  # the TimeStampReq is one byte longer

    response = authority.tsa.respond(bytes(request_der))

    assert response == _expected(authority, der, serial=draw % 2**127 + 1)


def test_timestamp_is_byte_identical_to_the_reference(authority: Authority, draw: int) -> None:
    imprint = tsp.MessageImprint(
        {"hash_algorithm": {"algorithm": "sha256"},
         "hashed_message": hashlib.sha256(b"a signature").digest()}
    )

    response = authority.tsa.timestamp(b"a signature")

    assert response == _reference(authority.leaf_der, authority.signer, imprint,
                                  draw % 2**64, True, draw % 2**127 + 1,
                                  GEN_TIME.replace(microsecond=0))


@pytest.mark.parametrize(
    "value",
    [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 2**63, 2**64 - 1, 2**127, 2**1030,
     -1, -0x80, -0x81, -0x8000, -0x8001, -(2**64)],
)
def test_der_integer_is_asn1cryptos(value: int) -> None:
    assert der_integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
     datetime(2026, 6, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=2)))],
)
def test_der_generalized_time_is_asn1cryptos(value: datetime) -> None:
    assert der_generalized_time(value) == core.GeneralizedTime(value).dump()


@pytest.mark.parametrize("sizes", [(0, 1), (127, 128), (255, 256), (70_000, 3), (5, 5, 5)])
def test_der_set_of_is_asn1cryptos(sizes: tuple[int, ...]) -> None:
    # Lengths across the one-, two- and three-byte forms, and equal lengths sorted by content.
    strings = [bytes([0xFF - i]) * size for i, size in enumerate(sizes)]
    elements = [core.OctetString(s).dump() for s in strings]

    assert _der_set_of(*elements) == core.SetOf(strings, spec=core.OctetString).dump()
