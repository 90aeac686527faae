"""The server admin key: rotated by the operator, on the machine that holds the database.

``signer server rotate-admin-key`` needs the data directory and the database, not the old
key, so it also serves when the key is lost or stolen. The new key is created before the old
ones are revoked, in one transaction each: an interruption leaves two working keys (run it
again), never none. Namespace keys are untouched; the change applies at once on every replica
(keys are checked against the database on every request).
"""

from __future__ import annotations

from datetime import UTC, datetime

from signer.errors import UsageError
from signer.service import database
from signer.service.audit import Audit
from signer.service.config import Settings
from signer.service.store import Store

ROTATED_BY = "signer server rotate-admin-key"


def rotate(settings: Settings) -> tuple[str, list[str]]:
    """A new server admin key; every other active one revoked. Returns (token, revoked ids)."""
    if not settings.layout.certificate("root").exists():
        raise UsageError(f"{settings.data_dir} is not initialized.",
                         f"Run 'signer server init --data-dir {settings.data_dir}' first.")
    audit = Audit.for_command(settings.audit_log)
    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    try:
        store = Store(engine)
        old = [k for k in store.list_api_keys(None) if k.revoked_at is None]
        name = "admin-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        new, token = store.create_api_key(None, name, ["admin"], ROTATED_BY)
        revoked = []
        for key in old:
            if key.id != new.id:
                store.revoke_api_key(None, key.id)
                revoked.append(key.id)
        audit.admin("admin_key.rotate", id=new.id, name=new.name, revoked=revoked)
        return token, revoked
    finally:
        engine.dispose()
