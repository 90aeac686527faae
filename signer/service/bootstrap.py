"""``signer server init``: keys, certificates, schema, and the one-time admin API key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from signer.errors import Conflict
from signer.service import ca, database, keyring, keys, tuf_repository
from signer.service.audit import Audit
from signer.service.config import Settings, passphrase
from signer.service.database import Engine
from signer.service.log import TransparencyLog
from signer.service.log.rfc6962 import Rfc6962Log
from signer.service.log.tiles import TileLog
from signer.service.store import Store

if TYPE_CHECKING:
    from signer.service.pkcs11 import Reference


def initialize(settings: Settings, token: Reference | None = None) -> str:
    """Create the CA hierarchy, the TSA, the TUF repository (its root key at
    :func:`tuf_repository.root_key_path`, for the operator), the database; return the admin
    API key (shown once).

    ``token``: the keys are made (or, for the labels it names, found) on that PKCS#11 token,
    and the data directory holds only certificates and ``keys/pkcs11.json``."""
    layout = settings.layout
    if layout.certificate("root").exists():
        raise Conflict(f"{settings.data_dir} is already initialized.",
                       "Start it with 'signer server start', or choose an empty --data-dir.")
    audit = Audit.for_command(settings.audit_log)  # before anything: a bad path fails first
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
    tuf_repository.initialize(settings.data_dir, secret)

    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    migrate(settings, engine)
    key, admin_key = Store(engine).create_api_key(None, "admin", ["admin"], "signer server init")
    engine.dispose()
    audit.admin("admin_key.create", id=key.id, name=key.name)
    return admin_key


def migrate(settings: Settings, engine: Engine) -> str:
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


# The signature log (Rekor v1), the CT log, the Rekor v2 tile log: in this order everywhere.
LOG_NAMES = ("tlog", "ctlog", "tlog2")


def transparency_logs(settings: Settings, engine: Engine,
                      rings: Mapping[str, keyring.Ring] | None = None
                      ) -> tuple[TransparencyLog, ...]:
    """The signature log, the CT log and the Rekor v2 log, each signing with its active key
    (``signer server rotate-key`` changes it; the tree stays). ``rings``: the logs' keys, if
    loaded already."""
    if rings is None:
        secret = passphrase()
        rings = {name: keyring.load(settings.layout, name, secret) for name in LOG_NAMES}
    return tuple(transparency_log(settings, engine, name, rings[name]) for name in LOG_NAMES)


def transparency_log(settings: Settings, engine: Engine, name: str, ring: keyring.Ring
                     ) -> TransparencyLog:
    """``tlog``: the signature log (Rekor API at the service's URL, entries promised);
    ``ctlog``: the CT log (under /ct); ``tlog2``: the Rekor v2 log (its write and read APIs
    under the service's URL + /api/v2)."""
    if name == "tlog":
        return Rfc6962Log("tlog", engine, ring.signer, settings.url, signs_entries=True)
    if name == "tlog2":
        return TileLog("tlog2", engine, ring.signer, settings.url)
    return Rfc6962Log("ctlog", engine, ring.signer, settings.url + "/ct", signs_entries=False)


def rotate_key(settings: Settings, kind: str) -> tuple[keyring.KeyVersion, keyring.KeyVersion]:
    """``signer server rotate-key``: the key ring changes; for a log, its tree head is signed
    again by the new key at once (same tree, same size), so monitors see the new key."""
    audit = Audit.for_command(settings.audit_log)
    retired, new = keyring.rotate(settings, kind)
    audit.rotated(kind, retired.key_file, new.key_file, new.start)
    if kind in LOG_NAMES:
        engine = database.create_engine(database.database_url(settings.database_url,
                                                              settings.data_dir))
        try:
            ring = keyring.load(settings.layout, kind, passphrase())
            transparency_log(settings, engine, kind, ring).resign_head()
        finally:
            engine.dispose()
    return retired, new

