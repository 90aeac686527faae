"""``signer server init``: keys, certificates, schema, and the one-time admin API key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from signer.errors import Conflict
from signer.service import ca, database, keyring, keys
from signer.service.config import Settings, passphrase
from signer.service.log import TransparencyLog
from signer.service.schema import log_trees
from signer.service.store import Store
from signer.transparency.checkpoint import (
    Checkpoint,
    key_hint,
    sign_checkpoint,
    signature_key_hints,
)

if TYPE_CHECKING:
    from signer.service.pkcs11 import Reference


def initialize(settings: Settings, token: Reference | None = None) -> str:
    """Create the CA hierarchy, the TSA, the database; return the admin API key (shown once).

    ``token``: the keys are made (or, for the labels it names, found) on that PKCS#11 token,
    and the data directory holds only certificates and ``keys/pkcs11.json``."""
    layout = settings.layout
    if layout.certificate("root").exists():
        raise Conflict(f"{settings.data_dir} is already initialized.",
                       "Start it with 'signer server start', or choose an empty --data-dir.")
    layout.keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = passphrase()
    if token is not None:
        from signer.service import pkcs11

        pkcs11.use_token(layout.keys, token)

    store = keys.key_store(layout.keys, secret)
    root_key, intermediate_key, tsa_key = (store.generate(name)
                                           for name in ("root", "intermediate", "tsa"))
    root = ca.create_root(root_key)
    intermediate = ca.create_intermediate(intermediate_key.public_key, root_key, root)
    tsa = ca.create_tsa_certificate(tsa_key.public_key, root_key, root)
    for name, cert in (("root", root), ("intermediate", intermediate), ("tsa", tsa)):
        keys.write_certificate(layout.certificate(name), cert)

    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    migrate(settings, engine)
    _, admin_key = Store(engine).create_api_key(None, "admin", ["admin"], "signer server init")
    engine.dispose()
    return admin_key


def migrate(settings: Settings, engine: sa.Engine) -> str:
    """Upgrade the schema, and create what a newer release adds (the log keys and trees)."""
    head = database.migrate(engine)
    layout = settings.layout
    store = keys.key_store(layout.keys, passphrase())
    for name in LOG_NAMES:
        if not store.exists(name):
            store.generate(name)
    for log in transparency_logs(settings, engine):
        log.create()
    return head


LOG_NAMES = ("tlog", "ctlog")


def transparency_logs(settings: Settings, engine: sa.Engine,
                      rings: Mapping[str, keyring.Ring] | None = None
                      ) -> tuple[TransparencyLog, ...]:
    """The signature log and the CT log, each signing with its active key (``signer server
    rotate-key`` changes it; the tree stays). ``rings``: the logs' keys, if loaded already."""
    if rings is None:
        secret = passphrase()
        rings = {name: keyring.load(settings.layout, name, secret) for name in LOG_NAMES}
    return tuple(transparency_log(settings, engine, name, rings[name]) for name in LOG_NAMES)


def transparency_log(settings: Settings, engine: sa.Engine, name: str, ring: keyring.Ring
                     ) -> TransparencyLog:
    """``tlog``: the signature log (Rekor API at the service's URL, entries promised);
    ``ctlog``: the CT log (under /ct)."""
    if name == "tlog":
        return TransparencyLog("tlog", engine, ring.signer, settings.url, signs_entries=True)
    return TransparencyLog("ctlog", engine, ring.signer, settings.url + "/ct",
                           signs_entries=False)


def rotate_key(settings: Settings, kind: str) -> tuple[keyring.KeyVersion, keyring.KeyVersion]:
    """``signer server rotate-key``: the key ring changes; for a log, its tree head is signed
    again by the new key at once (same tree, same size), so monitors see the new key."""
    retired, new = keyring.rotate(settings, kind)
    if kind in LOG_NAMES:
        engine = database.create_engine(database.database_url(settings.database_url,
                                                              settings.data_dir))
        try:
            ring = keyring.load(settings.layout, kind, passphrase())
            resign_head(transparency_log(settings, engine, kind, ring))
        finally:
            engine.dispose()
    return retired, new


def resign_head(log: TransparencyLog) -> bool:
    """Sign the tree head again when the log's active key did not sign it (after a rotation).

    Runs under the tree's row lock, like appends; the head's size and root do not change.
    """
    hint = key_hint(log.signer.public_key)
    with log.engine.connect() as conn:  # the usual case, at every start: no write lock
        current = conn.execute(sa.select(log_trees.c.checkpoint)
                               .where(log_trees.c.name == log.name)).scalar()
    if current is None or hint in signature_key_hints(current):
        return False
    with log.engine.execution_options(write=True).begin() as tx:
        head = tx.execute(sa.select(log_trees).where(log_trees.c.name == log.name)
                          .with_for_update()).first()
        if head is None or hint in signature_key_hints(head.checkpoint):
            return False
        envelope = sign_checkpoint(
            Checkpoint(log.origin(int(head.tree_id)), int(head.size), bytes(head.root_hash)),
            log.signer_name, log.signer)
        tx.execute(log_trees.update().where(log_trees.c.name == log.name).values(
            checkpoint=envelope, updated_at=datetime.now(UTC)))
    return True
