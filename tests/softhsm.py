"""SoftHSM2 tokens for the tests, each in a directory of its own making, as an operator would
make them (``softhsm2-util --init-token``).

``SIGNER_TEST_KEYS=pkcs11`` puts every service the suite starts on a token: ``init`` in
tests/service_process.py then generates each data directory's keys on the session's one
SoftHSM2 token, under a label prefix of its own, and every process the tests start gets its
``SOFTHSM2_CONF`` and the PIN.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signer.service.keys import KeySigner

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "so-pin-1234"
PIN = "user-pin-5678"
KEYS_ENV = "SIGNER_TEST_KEYS"


@dataclass(frozen=True)
class SoftHSM:
    """A SoftHSM2 configuration whose tokens live under ``root/tokens``."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> SoftHSM:
        (root / "tokens").mkdir(parents=True, exist_ok=True)
        hsm = cls(root)
        hsm.conf.write_text(f"directories.tokendir = {root / 'tokens'}\n"
                            "objectstore.backend = file\nlog.level = ERROR\n")
        return hsm

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def new_token(self, label: str) -> Path:
        """A token labelled ``label`` with the PINs above; → its directory."""
        before = set((self.root / "tokens").iterdir())
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                        "--so-pin", SO_PIN, "--pin", PIN], check=True, capture_output=True,
                       env={**os.environ, **self.env})
        (made,) = set((self.root / "tokens").iterdir()) - before
        return made

    def pkcs11_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pkcs11-tool", "--module", MODULE, *args], capture_output=True,
                              text=True, env={**os.environ, **self.env}, timeout=60, check=False)


def file_keys_only() -> None:
    """Skip a test about key files (modes, passphrases) when the keys are on a token."""
    import pytest

    if token_keys():
        pytest.skip(f"{KEYS_ENV}=pkcs11: the keys are on a token, there are no key files")


def service_key(keys_dir: Path, name: str) -> KeySigner:
    """A service key, as a test forging with it would hold it: from its file, or its token."""
    from signer.service.keys import key_store

    return key_store(keys_dir, None).load(name)


def init_args(label: str) -> list[str]:
    return ["--pkcs11-module", MODULE, "--pkcs11-token-label", label]


def token_keys() -> bool:
    """True when the suite runs with every key on a token (``SIGNER_TEST_KEYS=pkcs11``)."""
    mode = os.environ.get(KEYS_ENV, "files")
    if mode not in ("files", "pkcs11"):
        raise RuntimeError(f"{KEYS_ENV}={mode}: use 'files' (the default) or 'pkcs11'")
    return mode == "pkcs11"


@functools.cache
def _session() -> tuple[SoftHSM, str]:
    """The session's SoftHSM2 directory and its one token, made at the first call (before this
    process loads the module: SoftHSM2 sees tokens made later only when initialized again);
    every process started afterwards inherits its SOFTHSM2_CONF."""
    hsm = SoftHSM.create(Path(tempfile.mkdtemp(prefix="signer-softhsm-")))
    os.environ.update(hsm.env)
    os.environ["SIGNER_PKCS11_PIN"] = PIN  # for tests that sign with a service's key
    label = "signer-tests"
    hsm.new_token(label)
    return hsm, label


def session_token() -> list[str]:
    """The init flags for the session's token, each data directory's keys under a prefix."""
    _, label = _session()
    return [*init_args(label), "--pkcs11-label-prefix", f"{uuid.uuid4().hex[:10]}-"]


def fresh_module() -> None:
    """Initialize SoftHSM2 again in this process (a new SOFTHSM2_CONF, or tokens made since it
    was loaded); the connections made before are dropped with it."""
    from signer.service import pkcs11

    if MODULE in pkcs11._libraries:
        pkcs11._libraries[MODULE].reinitialize()
    pkcs11._tokens.clear()
