"""The TUF repository that publishes the trust root and the signing config to Sigstore clients.

``sigstore --instance <public-url>/tuf`` (after ``sigstore trust-instance root.json``),
policy-controller's TrustRoot and Kyverno's ``tuf`` settings read Sigstore's trust material
from a TUF repository: two targets, ``trusted_root.json`` and ``signing_config.v0.2.json``
(sigstore-python asks for these names, no custom metadata). This module keeps that repository
under ``<data-dir>/tuf/``, laid out as TUF clients fetch it with consistent snapshots:
``<N>.root.json``, ``timestamp.json``, ``<V>.snapshot.json``, ``<V>.targets.json``, and
``targets/<sha256>.<name>``. The directory is the repository: a mirror may copy it as is.

Keys. The root key is the operator's: ``signer tuf init`` writes it to
``<data-dir>/tuf-root.key`` (mode 0600, encrypted with ``SIGNER_CA_PASSPHRASE``), to be moved
offline; the service never reads it. The targets, snapshot and timestamp keys are the
service's, under ``keys/`` like every other service key (:mod:`signer.service.keys`), so the
service re-signs without the operator: a new targets version when the trust material changes
(at start, and at ``signer server rotate-key``), and snapshot and timestamp before they expire
(checked when ``timestamp.json`` is asked for, the first file every client fetches).

Writes happen under a file lock (replicas share the data directory), each file replaced
atomically, ``timestamp.json`` last: it is the moment a new version is published.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from securesystemslib.signer import Key, Signature, Signer, SSlibKey
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from signer.errors import Conflict, NotFound, UsageError
from signer.service import keys

# The two targets Sigstore clients look up by name (sigstore-python's TrustUpdater).
TRUSTED_ROOT_TARGET: Final = "trusted_root.json"
SIGNING_CONFIG_TARGET: Final = "signing_config.v0.2.json"

# Lifetimes. The root is signed by the operator's offline key: a year, renewed by hand. The
# others are signed by the service, which renews each when less than half its life is left:
# a stolen or frozen copy of the timestamp goes stale within a day.
ROOT_EXPIRY: Final = timedelta(days=365)
TARGETS_EXPIRY: Final = timedelta(days=90)
SNAPSHOT_EXPIRY: Final = timedelta(days=7)
TIMESTAMP_EXPIRY: Final = timedelta(days=1)

ROOT_KEY: Final = "tuf-root"  # the file <data-dir>/tuf-root.key, the operator's
SERVICE_ROLES: Final = ("targets", "snapshot", "timestamp")  # keys/tuf-<role>.key

PUBLISHED_URL: Final = ".published-url"  # not served: only names below are
METADATA_NAME: Final = re.compile(r"(?:[1-9][0-9]{0,9}\.(?:root|snapshot|targets)|timestamp)"
                                  r"\.json")
TARGET_NAME: Final = re.compile(r"[0-9a-f]{64}\.[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_PRETTY = JSONSerializer(compact=False)


class KeySignerAdapter(Signer):
    """A :class:`keys.KeySigner` (file key today, KMS later) as securesystemslib's Signer:
    ECDSA P-256, ``ecdsa-sha2-nistp256`` (DER signature over SHA-256 of the canonical JSON,
    which is what ``KeySigner.sign`` makes)."""

    def __init__(self, key: keys.KeySigner) -> None:
        self._key = key
        self._public = SSlibKey.from_crypto(key.public_key)

    @property
    def public_key(self) -> Key:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        return Signature(self._public.keyid, self._key.sign(payload).hex())

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri: str, public_key: Key,
                          secrets_handler: Any = None) -> Signer:
        raise NotImplementedError("made from a KeySigner, not from a URI")


def directory(data_dir: Path) -> Path:
    return data_dir / "tuf"


def root_key_path(data_dir: Path) -> Path:
    return keys.KeyFiles(data_dir, None).path(ROOT_KEY)


def initialize(data_dir: Path, secret: bytes | None, now: datetime | None = None) -> Path:
    """A new repository: the operator's root key (→ its path), the service's role keys, root
    version 1 and empty targets, snapshot and timestamp (the service publishes the targets)."""
    repo = directory(data_dir)
    if (repo / "1.root.json").exists():
        raise Conflict(f"{data_dir} has a TUF repository already ({repo}).",
                       "Keep it: clients trust its root. Start the service to publish.")
    keys_dir = data_dir / "keys"
    if not keys_dir.is_dir():
        raise UsageError(f"{data_dir} is not initialized.",
                         f"Run 'signer server init --data-dir {data_dir}' first.")
    (repo / "targets").mkdir(parents=True, exist_ok=True)
    store = keys.key_store(keys_dir, secret)
    role_keys = {role: KeySignerAdapter(store.generate(f"tuf-{role}")) for role in SERVICE_ROLES}
    root_signer = KeySignerAdapter(keys.KeyFiles(data_dir, secret).generate(ROOT_KEY))
    now = now or datetime.now(UTC)
    root = Root(expires=_expiry(now, ROOT_EXPIRY), consistent_snapshot=True)
    root.add_key(root_signer.public_key, Root.type)
    for role, signer in role_keys.items():
        root.add_key(signer.public_key, role)
    root_md = Metadata(root)
    root_md.sign(root_signer)
    _write(repo / "1.root.json", root_md.to_bytes(_PRETTY))
    repository = Repository(repo, role_keys)
    with repository.locked():
        repository.commit(Targets(expires=_expiry(now, TARGETS_EXPIRY)), now)
    return root_key_path(data_dir)


def renew_root(data_dir: Path, root_key: Path, secret: bytes | None,
               now: datetime | None = None) -> Metadata[Root]:
    """The next root version, the same keys, a year more, signed by the operator's root key
    (brought back from offline for this): ``<N+1>.root.json``, which clients fetch first."""
    repository = load(data_dir, secret)
    if repository is None:
        raise UsageError(f"{data_dir} has no TUF repository.",
                         f"Run 'signer tuf init --data-dir {data_dir}' first.")
    if root_key.suffix != ".key":
        raise UsageError(f"{root_key} is not a key file (NAME.key).",
                         "Give the tuf-root.key that 'signer tuf init' wrote.")
    signer = KeySignerAdapter(keys.KeyFiles(root_key.parent, secret).load(root_key.stem))
    current = repository.root()
    if signer.public_key.keyid not in current.signed.roles[Root.type].keyids:
        raise UsageError(f"{root_key} is not the root key of the TUF repository {repository.path}.",
                         "Give the tuf-root.key that 'signer tuf init' wrote.")
    root = current.signed
    root.version += 1
    root.expires = _expiry(now or datetime.now(UTC), ROOT_EXPIRY)
    renewed = Metadata(root)
    renewed.sign(signer)
    with repository.locked():
        _write(repository.path / f"{root.version}.root.json", renewed.to_bytes(_PRETTY))
    return renewed


def _expiry(now: datetime, lifetime: timedelta) -> datetime:
    return (now + lifetime).replace(microsecond=0)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    with tmp.open("rb") as stream:
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def load(data_dir: Path, secret: bytes | None) -> Repository | None:
    """The service's repository with its role keys, or None when ``signer tuf init`` was never
    run. The keys must be the ones the current root names."""
    repo = directory(data_dir)
    if not (repo / "1.root.json").exists():
        return None
    store = keys.key_store(data_dir / "keys", secret)
    repository = Repository(repo, {role: KeySignerAdapter(store.load(f"tuf-{role}"))
                                   for role in SERVICE_ROLES})
    root = repository.root()
    for role, signer in repository.signers.items():
        if signer.public_key.keyid not in root.signed.roles[role].keyids:
            raise UsageError(f"The key keys/tuf-{role}.key is not the {role} key of the TUF "
                             f"root {repo}.", "Restore the keys directory from a backup.")
    return repository


@dataclass
class Repository:
    path: Path
    signers: Mapping[str, KeySignerAdapter]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time across the processes and replicas on this data directory."""
        with (self.path / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def root(self) -> Metadata[Root]:
        versions = sorted(int(p.name.split(".")[0]) for p in self.path.glob("*.root.json"))
        return Metadata[Root].from_bytes((self.path / f"{versions[-1]}.root.json").read_bytes())

    def timestamp(self) -> Metadata[Timestamp]:
        return Metadata[Timestamp].from_bytes((self.path / "timestamp.json").read_bytes())

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return Metadata[Snapshot].from_bytes(
            (self.path / f"{version}.snapshot.json").read_bytes())

    def targets(self) -> Metadata[Targets]:
        version = self.snapshot().signed.meta["targets.json"].version
        return Metadata[Targets].from_bytes((self.path / f"{version}.targets.json").read_bytes())

    def read(self, name: str) -> bytes:
        """A metadata file (``timestamp.json`` renewed first if it is due) or a target
        (``targets/<sha256>.<name>``), as clients fetch them."""
        if name == "timestamp.json":
            self.refresh()
        folder, _, file = name.rpartition("/")
        if not ((folder == "" and METADATA_NAME.fullmatch(file))
                or (folder == "targets" and TARGET_NAME.fullmatch(file))):
            raise NotFound(f"The TUF repository has no file '{name[:120]}'.",
                           "Clients fetch N.root.json, timestamp.json, V.snapshot.json, "
                           "V.targets.json and targets/<sha256>.<name>.")
        try:
            return (self.path / folder / file).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"The TUF repository has no file '{name}'.",
                           "Update the client's metadata: it may ask for an old version."
                           ) from None

    def publish(self, targets: Mapping[str, bytes], url: str, now: datetime | None = None
                ) -> int | None:
        """Make ``targets`` (name → content) the repository's targets: a new targets version,
        snapshot and timestamp when they differ from the published ones (→ the new targets
        version), else nothing (→ None). ``url``: the service's public URL the targets name,
        kept for :meth:`published_url`."""
        now = now or datetime.now(UTC)
        wanted = {name: TargetFile.from_data(name, data, ["sha256"])
                  for name, data in targets.items()}
        with self.locked():
            if self.published_url() != url:
                _write(self.path / PUBLISHED_URL, url.encode())
            current = self.targets().signed
            if {n: t.hashes for n, t in current.targets.items()} == \
                    {n: t.hashes for n, t in wanted.items()}:
                return None
            for name, data in targets.items():
                digest = hashlib.sha256(data).hexdigest()
                _write(self.path / "targets" / f"{digest}.{name}", data)
            new = Targets(version=current.version + 1, expires=_expiry(now, TARGETS_EXPIRY),
                          targets=wanted)
            self.commit(new, now)
            return new.version

    def published_url(self) -> str | None:
        """The public URL of the service that last published (the key rotation command,
        which has no ``--public-url``, publishes for it)."""
        try:
            return (self.path / PUBLISHED_URL).read_text().strip() or None
        except FileNotFoundError:
            return None

    def refresh(self, now: datetime | None = None) -> bool:
        """Renew what the service signs before it expires: targets (same content, next
        version), snapshot, timestamp, each when less than half its life is left. → renewed"""
        now = now or datetime.now(UTC)
        if not _due(self.timestamp().signed.expires, TIMESTAMP_EXPIRY, now):
            return False  # the usual case: no lock, one small read
        with self.locked():
            timestamp = self.timestamp().signed
            if not _due(timestamp.expires, TIMESTAMP_EXPIRY, now):
                return False  # another process renewed it meanwhile
            snapshot = self.snapshot().signed
            targets = self.targets().signed
            if _due(targets.expires, TARGETS_EXPIRY, now):
                targets = Targets(version=targets.version + 1,
                                  expires=_expiry(now, TARGETS_EXPIRY), targets=targets.targets)
                self.commit(targets, now)
            elif _due(snapshot.expires, SNAPSHOT_EXPIRY, now):
                self.commit(None, now)
            else:
                self._sign_timestamp(snapshot.version, timestamp.version + 1, now)
            return True

    def commit(self, targets: Targets | None, now: datetime) -> None:
        """Write ``targets`` (if given), then a new snapshot naming the current targets, then
        the timestamp naming it. Call with the lock held."""
        try:
            previous = self.timestamp().signed
        except FileNotFoundError:  # the very first commit
            snapshot_version, timestamp_version, targets_version = 1, 1, 1
        else:
            snapshot_version = previous.snapshot_meta.version + 1
            timestamp_version = previous.version + 1
            targets_version = self.snapshot().signed.meta["targets.json"].version
        if targets is not None:
            self._write_signed(Metadata(targets), f"{targets.version}.targets.json")
            targets_version = targets.version
        snapshot = Snapshot(version=snapshot_version, expires=_expiry(now, SNAPSHOT_EXPIRY),
                            meta={"targets.json": MetaFile(version=targets_version)})
        self._write_signed(Metadata(snapshot), f"{snapshot_version}.snapshot.json")
        self._sign_timestamp(snapshot_version, timestamp_version, now)

    def _sign_timestamp(self, snapshot_version: int, version: int, now: datetime) -> None:
        timestamp = Timestamp(version=version, expires=_expiry(now, TIMESTAMP_EXPIRY),
                              snapshot_meta=MetaFile(version=snapshot_version))
        self._write_signed(Metadata(timestamp), "timestamp.json")

    def _write_signed(self, metadata: Metadata[Any], name: str) -> None:
        metadata.sign(self.signers[metadata.signed.type])
        try:  # the root is the client's judge: check against it before anyone sees the file
            self.root().verify_delegate(metadata.signed.type, metadata)
        except UnsignedMetadataError as exc:
            raise UsageError(f"The TUF {metadata.signed.type} key does not match the root.",
                             "Restore the keys directory from a backup.") from exc
        _write(self.path / name, metadata.to_bytes(_PRETTY))


def _due(expires: datetime, lifetime: timedelta, now: datetime) -> bool:
    return expires - now < lifetime / 2
