"""Key rotation: which key of each kind signs now, and the retired ones verifiers still need.

Five kinds rotate: ``ca`` (the intermediate that issues leaves), ``tsa`` (the timestamping key
and its certificate), ``tlog``, ``ctlog`` and ``tlog2`` (the log keys, ``tlog2`` the Rekor v2
tile log's; the trees stay, entries and indices continue, only the signing key changes).
The root does not rotate.

Where they live: ``<data-dir>/keys/keyring.json`` lists, per kind, every key version in order,
each with its file, its public part (a certificate, or the public key for logs), and its
validity ``[start, end)``; the last one, whose end is open, is the active one. A kind that was
never rotated has no entry and keeps the files ``server init`` wrote (``intermediate.key``,
``tsa.key``, ``tlog.key`` …), valid since its certificate (CA, TSA) or the root (logs).

Rotation writes the new key under a new name (mode 0600, encrypted with
``SIGNER_CA_PASSPHRASE`` like ``init``; on a PKCS#11 token, a new token key labelled with that
name, listed as ``pkcs11:<label>``), then replaces ``keyring.json`` atomically: that rename
is the one moment the rotation happens, so an interruption leaves either the old state or the
new, never half of each. Retired private keys stay on disk but are never read again (only
their public part is); an operator may shred them. The boundary is a whole second (timestamps
carry whole seconds) a moment in the future; the command waits for it, so nothing is signed
by the new key before its ``start``.

Replicas share the data directory and read the key ring at start: restart every replica after
a rotation (until then it signs with the retired key, past that key's ``end``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from signer.errors import UsageError
from signer.service import ca, keys
from signer.service.config import Layout, Settings, passphrase

KINDS: Final = ("ca", "tsa", "tlog", "ctlog", "tlog2")
# The files ``server init`` (and ``migrate``, for the logs) wrote for each kind.
INITIAL_FILE: Final = {"ca": "intermediate", "tsa": "tsa", "tlog": "tlog", "ctlog": "ctlog",
                       "tlog2": "tlog2"}
CERTIFIED: Final = frozenset({"ca", "tsa"})
MANIFEST: Final = "keyring.json"
MANIFEST_VERSION: Final = 1


@dataclass(frozen=True)
class KeyVersion:
    """One key of a kind: where it is, its public part, and when it may be trusted."""

    kind: str
    key_file: str  # relative to the keys directory, or pkcs11:<label> for a token key
    certificate: x509.Certificate | None  # CA and TSA
    public_key: ec.EllipticCurvePublicKey
    start: datetime
    end: datetime | None = None
    name: str = ""  # the key store's name of the key [default: key_file without .key]

    @property
    def key_name(self) -> str:
        return self.name or self.key_file.removesuffix(".key")

    @property
    def active(self) -> bool:
        return self.end is None

    def to_json(self) -> dict[str, Any]:
        named = {} if self.key_file == f"{self.key_name}.key" else {"name": self.key_name}
        return {
            "key": self.key_file,
            **named,
            "certificate": f"{self.key_name}.pem" if self.certificate is not None else None,
            "public_key": self.public_key.public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(),
            "start": _iso(self.start),
            "end": _iso(self.end) if self.end else None,
        }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _manifest(layout: Layout) -> dict[str, Any]:
    path = layout.keys / MANIFEST
    if not path.exists():
        return {"version": MANIFEST_VERSION, "keys": {}}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"The key ring {path} is not JSON ({exc}).",
                         "Restore it from a backup of the data directory.") from exc
    if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("keys"), dict):
        raise UsageError(f"The key ring {path} has an unknown format.",
                         "Use the signer release that wrote it, or restore a backup.")
    return data


def _initial(layout: Layout, kind: str, signer: keys.KeySigner, store: keys.KeyStore
             ) -> KeyVersion:
    """The key ``server init`` made, never rotated: valid since its certificate, or the root."""
    name = INITIAL_FILE[kind]
    if kind in CERTIFIED:
        cert = keys.read_certificate(layout.certificate(name))
        public = cert.public_key()
        start = cert.not_valid_before_utc
    else:
        cert = None
        public = signer.public_key
        start = keys.read_certificate(layout.certificate("root")).not_valid_before_utc
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return KeyVersion(kind, store.describe(name), cert, public, start, name=name)


def _from_json(layout: Layout, kind: str, item: dict[str, Any]) -> KeyVersion:
    cert = keys.read_certificate(layout.keys / item["certificate"]) \
        if item.get("certificate") else None
    public = cert.public_key() if cert else load_pem_public_key(item["public_key"].encode())
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise UsageError(f"The key ring lists a {kind} key that is not ECDSA.")
    end = item.get("end")
    return KeyVersion(kind, item["key"], cert, public, datetime.fromisoformat(item["start"]),
                      datetime.fromisoformat(end) if end else None, item.get("name", ""))


@dataclass(frozen=True)
class Ring:
    """A kind's keys: the key that signs now, and every version (the active last)."""

    signer: keys.KeySigner
    versions: tuple[KeyVersion, ...]

    @property
    def active(self) -> KeyVersion:
        return self.versions[-1]


def load(layout: Layout, kind: str, secret: bytes | None) -> Ring:
    """Every key of ``kind``, and the active one (loaded once, checked against its listed
    public key)."""
    if kind not in KINDS:
        raise UsageError(f"'{kind}' is not a key kind.", f"Use one of {', '.join(KINDS)}.")
    store = keys.key_store(layout.keys, secret)
    listed = _manifest(layout)["keys"].get(kind)
    if not listed:
        signer = store.load(INITIAL_FILE[kind])
        return Ring(signer, (_initial(layout, kind, signer, store),))
    versions = tuple(_from_json(layout, kind, item) for item in listed)
    signer = store.load(versions[-1].key_name)
    if signer.public_key != versions[-1].public_key:
        raise UsageError(f"The {kind} key {versions[-1].key_file} does not match the key "
                         "ring.", f"Restore {layout.keys} from a backup.")
    return Ring(signer, versions)


@contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One rotation at a time, across processes on this data directory."""
    with (layout.keys / "keyring.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _boundary(now: datetime) -> datetime:
    """The next whole second: TSA genTime and log integrated times carry whole seconds."""
    return now.replace(microsecond=0) + timedelta(seconds=1)


def rotate(settings: Settings, kind: str) -> tuple[KeyVersion, KeyVersion]:
    """Retire the active ``kind`` key (end = now) and activate a new one. → (retired, new)"""
    layout = settings.layout
    if not layout.certificate("root").exists():
        raise UsageError(f"{settings.data_dir} is not initialized.",
                         f"Run 'signer server init --data-dir {settings.data_dir}' first.")
    secret = passphrase()
    with _locked(layout):
        # The old key must still load: a wrong passphrase fails here, before anything changes.
        listed = load(layout, kind, secret).versions
        old = listed[-1]
        at = _boundary(datetime.now(UTC))
        stem = f"{INITIAL_FILE[kind]}-{at.strftime('%Y%m%dT%H%M%SZ')}"
        store = keys.key_store(layout.keys, secret)
        if store.exists(stem):
            raise UsageError(f"The key {store.describe(stem)} exists: two rotations of {kind} "
                             "within a second.", "Run the command again.")
        # The root signs first: a wrong passphrase for it fails before the new key exists.
        root_signer = store.load("root") if kind in CERTIFIED else None
        new_key = store.generate(stem)
        new_public = new_key.public_key
        assert isinstance(new_public, ec.EllipticCurvePublicKey)
        cert = None
        if root_signer is not None:
            root = keys.read_certificate(layout.certificate("root"))
            create = ca.create_intermediate if kind == "ca" else ca.create_tsa_certificate
            cert = create(new_public, root_signer, root)
            keys.write_certificate(layout.keys / f"{stem}.pem", cert)
        retired = KeyVersion(kind, old.key_file, old.certificate, old.public_key, old.start, at,
                             old.name)
        new = KeyVersion(kind, store.describe(stem), cert, new_public, at, name=stem)
        data = _manifest(layout)
        data["keys"][kind] = [v.to_json() for v in (*listed[:-1], retired, new)]
        tmp = layout.keys / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        with tmp.open("rb") as stream:
            os.fsync(stream.fileno())
        # Nothing may be signed by the new key before its start: wait for the boundary.
        time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
        os.replace(tmp, layout.keys / MANIFEST)  # the rotation happens here, atomically
        return retired, new
