"""Hypothesis against the parsers at the trust boundary: artifact names, CSRs, bundles.

Whatever the input, each parser returns its typed object or raises ``UsageError`` (a 400
with a message), never anything else; what it accepts satisfies its documented rules; and
verification of a mutated bundle fails with a named step, never a crash.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from signer import bundle, trust
from signer.artifact import MAX_NAME_LENGTH, parse_ref
from signer.errors import SignerError, UsageError
from signer.service.ca import MAX_CSR_BYTES, parse_csr
from signer.verification import Verifier, from_flags
from tests.adversarial.builders import asset_path, asset_text

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
HEX = "0123456789abcdef"


# -- artifact names ----------------------------------------------------------------------------
name_chars = st.sampled_from(
    [*list(string.ascii_letters + string.digits + "._-/:"), "..", "/", "@", " ", "\n", "\t", "\x00", "\x1b", "\u202e", "а", "%2e", "\\", "１"])
names = st.lists(name_chars, max_size=40).map("".join)
digests = st.one_of(
    st.text(alphabet=HEX, min_size=62, max_size=66),
    st.text(alphabet=HEX + "ABCDEFg", min_size=64, max_size=64),
    st.text(max_size=70))
algorithms = st.sampled_from(["sha256", "sha256", "SHA256", "sha512", "md5", "", "sha256 "])
references = st.one_of(
    st.text(max_size=200),
    st.builds(lambda n, a, d: f"{n}@{a}:{d}", names, algorithms, digests),
    st.builds(lambda n, d: f"{n}@sha256:{d}", names, st.text(alphabet=HEX, min_size=64,
                                                              max_size=64)))


@FUZZ
@given(references)
@example("ghcr.io/acme/app@sha256:" + "a" * 64)
@example("a" * (MAX_NAME_LENGTH + 1) + "@sha256:" + "a" * 64)
def test_parse_ref_accepts_only_what_it_promises(reference: str) -> None:
    try:
        ref = parse_ref(reference)
    except UsageError as exc:
        assert exc.detail and all(c.isprintable() for c in exc.explain()), exc.explain()  # noqa: PT017
        return
    assert str(ref) == reference  # nothing is normalised away
    assert 0 < len(ref.name) <= MAX_NAME_LENGTH
    assert len(ref.digest) == 64 and set(ref.digest) <= set(HEX)
    assert all(c.isascii() and c.isprintable() and not c.isspace() for c in ref.name)
    assert not {".", ".."} & set(ref.name.split("/")) and not ref.name.startswith("/")
    assert "@" not in ref.name and "\\" not in ref.name
    filename = ref.safe_filename
    assert "/" not in filename and not filename.startswith(".")
    assert parse_ref(str(ref)) == ref


# -- CSRs ----------------------------------------------------------------------------------------
SEED_CSRS = [asset_text(n) for n in ("csr-p256-good.pem", "csr-p384.pem",
                                       "csr-p256-requests-san-uri.pem",
                                       "csr-p256-challenge-password.pem")]


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _der(pem: str) -> bytes:
    return x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER)


@st.composite
def mutated_csrs(draw: st.DrawFn) -> str:
    der = bytearray(_der(draw(st.sampled_from(SEED_CSRS))))
    for _ in range(draw(st.integers(1, 4))):
        if len(der) < 2:
            break
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(der) - 1))
        if kind == "flip":
            der[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            der[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            der[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del der[at:at + draw(st.integers(1, 8))]
        else:
            del der[max(at, 1):]
    return _pem(bytes(der))


@FUZZ
@given(st.one_of(mutated_csrs(), st.text(max_size=300),
                 st.binary(max_size=300).map(_pem)))
def test_parse_csr_never_accepts_a_bad_request_nor_crashes(pem: str) -> None:
    try:
        csr = parse_csr(pem)
    except UsageError as exc:
        assert exc.detail  # noqa: PT017
        return
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert csr.is_signature_valid
    assert len(csr.extensions) == 0 and len(csr.attributes) == 0
    assert len(pem) <= MAX_CSR_BYTES


# -- bundles ---------------------------------------------------------------------------------------
BUNDLE = json.loads(asset_text("bundle-from-foreign-service.sigstore.json"))
META = json.loads(asset_text("bundle-from-foreign-service.meta.json"))
FOREIGN_TRUST = trust.read(asset_path("trusted_root-foreign-service.json"))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.text(max_size=40),
                        st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


PATHS = _paths(BUNDLE)


@st.composite
def mutated_bundles(draw: st.DrawFn) -> str:
    data = json.loads(json.dumps(BUNDLE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(data)


@FUZZ
@given(st.one_of(mutated_bundles(), st.text(max_size=200), json_values.map(json.dumps)))
def test_bundle_parse_and_verify_never_crash(text: str) -> None:
    try:
        parsed = bundle.parse(text, "fuzzed bundle")
    except UsageError as exc:
        assert exc.detail.startswith("fuzzed bundle")  # noqa: PT017
        return
    assume(text != json.dumps(BUNDLE))
    verifier = Verifier(FOREIGN_TRUST)
    digest = bytes.fromhex(META["name"].rsplit(":", 1)[1])
    try:
        verifier.verify(parsed, digest, from_flags(META["issuer"]))
    except SignerError as exc:
        assert "step" in exc.detail or exc.status < 500  # noqa: PT017
        return
    # Only a mutation that left every verified byte as it was may pass.
    assert parsed.signature == bundle.parse(json.dumps(BUNDLE)).signature


def test_the_unmutated_asset_bundle_verifies() -> None:
    """The control for the property above."""
    parsed = bundle.parse(json.dumps(BUNDLE))
    digest = bytes.fromhex(META["name"].rsplit(":", 1)[1])
    Verifier(FOREIGN_TRUST).verify(parsed, digest, from_flags(META["issuer"]))
