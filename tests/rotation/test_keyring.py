"""The key ring on disk: what a rotation changes, and what it refuses to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from signer.errors import UsageError
from signer.service import keyring
from signer.service.bootstrap import initialize
from signer.service.config import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SIGNER_CA_PASSPHRASE", "ring")
    result = Settings(data_dir=tmp_path / "data")
    initialize(result)
    return result


def test_never_rotated_keys_are_the_init_files(settings: Settings) -> None:
    for kind in keyring.KINDS:
        (only,) = keyring.load(settings.layout, kind, b"ring").versions
        assert only.key_file == f"{keyring.INITIAL_FILE[kind]}.key" and only.end is None
    assert not (settings.layout.keys / keyring.MANIFEST).exists()


def test_rotation_retires_the_old_key_and_activates_a_new_one(settings: Settings) -> None:
    before = keyring.load(settings.layout, "tsa", b"ring").versions[-1]
    retired, new = keyring.rotate(settings, "tsa")
    listed = keyring.load(settings.layout, "tsa", b"ring").versions
    assert [v.key_file for v in listed] == [before.key_file, new.key_file]
    assert listed[0].end == listed[1].start == new.start and listed[1].end is None
    assert new.start.microsecond == 0 and retired.public_key == before.public_key
    ring = keyring.load(settings.layout, "tsa", b"ring")
    signer, active = ring.signer, ring.active
    assert signer.public_key == new.public_key == active.public_key
    assert new.certificate is not None and new.certificate.public_key() == new.public_key


def test_wrong_passphrase_changes_nothing(settings: Settings,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNER_CA_PASSPHRASE", "wrong")
    with pytest.raises(UsageError, match="wrong passphrase"):
        keyring.rotate(settings, "ca")
    assert not (settings.layout.keys / keyring.MANIFEST).exists()
    assert sorted(p.name for p in settings.layout.keys.glob("intermediate*")) == [
        "intermediate.key", "intermediate.pem"]


def test_a_damaged_key_ring_is_refused_with_a_fix(settings: Settings) -> None:
    (settings.layout.keys / keyring.MANIFEST).write_text("{not json")
    with pytest.raises(UsageError, match="not JSON") as caught:
        keyring.load(settings.layout, "tlog", b"ring")
    assert "backup" in (caught.value.fix or "")


def test_a_key_file_that_does_not_match_the_ring_is_refused(settings: Settings) -> None:
    _, new = keyring.rotate(settings, "tlog")
    other = keyring.load(settings.layout, "tlog", b"ring").versions[0].key_file
    (settings.layout.keys / new.key_file).unlink()
    (settings.layout.keys / new.key_file).symlink_to(settings.layout.keys / other)
    with pytest.raises(UsageError, match="does not match the key ring"):
        keyring.load(settings.layout, "tlog", b"ring")
