from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer.artifact import MAX_NAME_LENGTH, parse_ref, ref_for_file
from signer.errors import UsageError

HEX = "0123456789abcdef" * 4


def test_parse_ref() -> None:
    ref = parse_ref(f"ghcr.io/acme/app@sha256:{HEX}")
    assert (ref.name, ref.digest) == ("ghcr.io/acme/app", HEX)
    assert str(ref) == f"ghcr.io/acme/app@sha256:{HEX}"
    assert ref.safe_filename == f"ghcr.io_acme_app_sha256_{HEX}.sigstore.json"
    assert parse_ref(f"localhost:5000/a/b@sha256:{HEX}").name == "localhost:5000/a/b"


@pytest.mark.parametrize(("text", "phrase"), [
    ("ghcr.io/acme/app:v1", "has no digest"),
    ("ghcr.io/acme/app", "has no digest"),
    (f"ghcr.io/acme/app@sha256:{HEX[:-1]}", "got 63"),
    (f"ghcr.io/acme/app@sha256:{HEX}0", "got 65"),
    (f"ghcr.io/acme/app@sha256:{HEX.upper()}", "lowercase"),
    (f"ghcr.io/acme/app@sha512:{HEX}{HEX}", "not a sha256"),
    (f"ghcr.io/acme/app@{HEX}", "not a sha256"),
    (f"@sha256:{HEX}", "empty"),
    (f"a/../../etc@sha256:{HEX}", "not allowed"),
    (f"a b@sha256:{HEX}", "not allowed"),
    (f"a\nb@sha256:{HEX}", "not allowed"),
    ("x" * (MAX_NAME_LENGTH + 1) + f"@sha256:{HEX}", "limit"),
])
def test_refusals_say_how_to_fix(text: str, phrase: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert phrase in info.value.explain()
    assert "\n" not in info.value.detail


def test_tag_refusal_shows_how_to_get_the_digest() -> None:
    with pytest.raises(UsageError) as info:
        parse_ref("ghcr.io/acme/app:latest")
    assert "crane digest" in info.value.fix


@given(st.text(max_size=300))
def test_parser_never_crashes_and_accepts_only_canonical_refs(text: str) -> None:
    try:
        ref = parse_ref(text)
    except UsageError:
        return
    assert str(ref) == text


def test_file_digest(tmp_path: Path) -> None:
    f = tmp_path / "dist.tgz"
    f.write_bytes(b"payload")
    ref = ref_for_file(f)
    assert ref.name == "dist.tgz" and ref.digest == hashlib.sha256(b"payload").hexdigest()
    assert ref_for_file(f, "releases/dist.tgz").name == "releases/dist.tgz"
    with pytest.raises(UsageError, match="has sha256"):
        ref_for_file(f, f"dist.tgz@sha256:{HEX}")
    with pytest.raises(UsageError, match="Cannot read"):
        ref_for_file(tmp_path / "missing")
