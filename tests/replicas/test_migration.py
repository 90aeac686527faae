"""``signer server migrate`` upgrades a database with data in place, SQLite and PostgreSQL.

The database is created at the first revision (never by downgrading), filled with one row of
every kind through the first revision's own tables, and upgraded by the real command. Every
value stored at the first revision must still be there, the schema must be at head, and a
service started on it must serve the old rows and take new signatures. Written against no
particular later revision: it holds for whatever revisions exist.
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from signer.client import Client
from signer.service import database
from signer.service.keys import KeyFiles
from signer.service.schema import metadata
from signer.service.store import hash_secret
from signer.transparency import note
from tests import softhsm
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import SIGNER, Service, clean_env, init
from tests.service_process import database as fresh_database

pytestmark = [pytest.mark.integration]

NAMESPACE = "migrated"
KEY_ID, KEY_SECRET = "0001key0", "s" * 43
TOKEN = f"sgk_{KEY_ID}_{KEY_SECRET}"
DIGEST = hashlib.sha256(b"signed before the upgrade").hexdigest()
REVOKED_DIGEST = hashlib.sha256(b"revoked before the upgrade").hexdigest()
BUNDLE = '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}'


def first_revision(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        base = ScriptDirectory.from_config(database._config(connection)).get_base()
    assert isinstance(base, str), "the migrations must start from one revision"
    return base


def rows_at_first_revision(issuer_url: str) -> dict[str, list[dict[str, Any]]]:
    at = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=30)
    provenance = {"issuer": issuer_url, "source_repository_ref": "refs/heads/main",
                  "namespace": NAMESPACE, "provenance_source": "token"}

    def signature(sig_id: str, artifact_id: str, digest: str, revocation: str | None
                  ) -> dict[str, Any]:
        return {"id": sig_id, "namespace": NAMESPACE, "artifact_id": artifact_id,
                "name": "ghcr.io/acme/app", "digest": digest,
                "signature_sha256": hashlib.sha256(sig_id.encode()).hexdigest(),
                "identity": "repo:acme/app:ref:refs/heads/main", "issuer": issuer_url,
                "source_repository_ref": "refs/heads/main", "provenance": provenance,
                "certificate_serial": "1f", "signed_at": at, "created_at": at,
                "bundle": BUNDLE, "log_index": None, "revocation_id": revocation}

    def artifact(artifact_id: str, digest: str, revoked: int) -> dict[str, Any]:
        return {"id": artifact_id, "namespace": NAMESPACE, "name": "ghcr.io/acme/app",
                "digest": digest, "source_repository": f"{issuer_url}/acme/app",
                "created_at": at, "updated_at": at, "signature_count": 1,
                "revoked_count": revoked}

    return {  # in an order that satisfies the foreign keys
        "namespaces": [{"name": NAMESPACE, "created_at": at}],
        "api_keys": [{"id": KEY_ID, "namespace": NAMESPACE, "name": "ci",
                      "permissions": "revoke,sign,verify", "secret_hash": hash_secret(KEY_SECRET),
                      "created_at": at, "created_by": "signer server init", "revoked_at": None}],
        "policies": [{"id": "p" * 32, "namespace": NAMESPACE, "issuer": issuer_url,
                      "claims": {"repository_owner": "acme"}, "permissions": "sign,verify",
                      "created_at": at}],
        "certificates": [{"serial": "1f", "namespace": NAMESPACE,
                          "identity": "repo:acme/app:ref:refs/heads/main", "issuer": issuer_url,
                          "issued_at": at, "der": b"\x30\x00"}],
        "revocations": [{"id": "r" * 32, "namespace": NAMESPACE, "name": "ghcr.io/acme/app",
                         "source_repository_ref": "refs/heads/main", "reason": "old leak",
                         "revoked_by": "apikey:migrated/ci", "revoked_at": at, "count": 1}],
        "artifacts": [artifact("a" * 32, DIGEST, 0), artifact("b" * 32, REVOKED_DIGEST, 1)],
        "signatures": [signature("1" * 32, "a" * 32, DIGEST, None),
                       signature("2" * 32, "b" * 32, REVOKED_DIGEST, "r" * 32)],
    }


def read_back(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]]
              ) -> dict[str, list[dict[str, Any]]]:
    """The same tables and columns as ``rows``, as the database now holds them."""
    meta = sa.MetaData()
    meta.reflect(engine, only=list(rows))
    out = {}
    with engine.connect() as connection:
        for name, written in rows.items():
            table = meta.tables[name]
            columns = [table.c[c] for c in written[0]]
            key = next(iter(written[0]))
            out[name] = [dict(r._mapping) for r in connection.execute(
                sa.select(*columns).order_by(table.c[key]))]
    return out


def _normalized(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None)
        if isinstance(v, memoryview):
            return bytes(v)
        return v

    return {name: [{k: value(v) for k, v in row.items()} for row in rows]
            for name, rows in tables.items()}


def test_server_migrate_upgrades_the_first_revision_in_place(
    backend: str, issuer: FakeGitHubIssuer, tmp_path: Path
) -> None:
    # A data directory from before the Rekor v2 log had key files: token keys came with it.
    softhsm.file_keys_only()
    data_dir = tmp_path / "data"
    init(data_dir)  # the CA, the TSA and their keys; its database is replaced below
    for leftover in data_dir.glob("signer.db*"):
        leftover.unlink()
    # A data directory from before the Rekor v2 log: migrate makes its key and tree.
    (data_dir / "keys" / "tlog2.key").unlink()
    with fresh_database(backend) as url:
        engine = database.create_engine(database.database_url(url, data_dir))
        try:
            first = first_revision(engine)
            with engine.begin() as connection:
                command.upgrade(database._config(connection), first)
            assert database.current_revision(engine) == first
            rows = rows_at_first_revision(issuer.url)
            meta = sa.MetaData()
            meta.reflect(engine, only=list(rows))  # the first revision's tables, as they were
            with engine.begin() as connection:
                for name, values in rows.items():
                    connection.execute(meta.tables[name].insert(), values)
            before = _normalized(read_back(engine, rows))
        finally:
            engine.dispose()

        args = [SIGNER, "server", "migrate", "--data-dir", str(data_dir)]
        if url:
            args += ["--database-url", url]
        done = subprocess.run(args, capture_output=True, text=True, env=clean_env(),
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        head = database.head_revision()
        assert head in done.stdout

        engine = database.create_engine(database.database_url(url, data_dir))
        try:
            assert database.current_revision(engine) == head
            assert _normalized(read_back(engine, rows)) == before
            with engine.connect() as connection:  # the declared schema, indexes included
                assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        finally:
            engine.dispose()

        # A service on the upgraded database serves the old rows and takes new ones.
        # TOKEN is a namespace's key: nothing here needs the issuer declared (a server admin act).
        service = Service(data_dir, TOKEN, issuer.url, database_url=url, issuer_kind=None)
        service.start()
        try:
            client = Client(service.url, TOKEN)
            listed = {s["id"]: s for s in client.list_signatures(NAMESPACE)}
            assert set(listed) == {"1" * 32, "2" * 32}
            assert listed["2" * 32]["revoked"] and not listed["1" * 32]["revoked"]
            shown = client.show_signature(NAMESPACE, "2" * 32)
            assert shown["revocation"]["reason"] == "old leak"
            assert shown["provenance"]["source_repository_ref"] == "refs/heads/main"
            assert [e["id"] for e in client.entries(
                NAMESPACE, f"ghcr.io/acme/app@sha256:{DIGEST}")] == ["1" * 32]
            # The policy stored at the first revision still admits the issuer's tokens.
            key = ec.generate_private_key(ec.SECP256R1())
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
                key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
            Client(service.url, issuer.token()).issue_certificate(NAMESPACE, csr, {})
            # And the API key stored then signs and verifies now, through the CLI.
            env = {"SIGNER_API_KEY": TOKEN, "SIGNER_NAMESPACE": NAMESPACE}
            name = f"ghcr.io/acme/new@sha256:{hashlib.sha256(b'after').hexdigest()}"
            signed = service.cli("artifact", "sign", "--name", name, cwd=tmp_path, env=env)
            assert signed.returncode == 0, signed.stderr
            verified = service.cli("artifact", "verify", "--name", name,
                                   "--certificate-oidc-issuer", f"{service.url}/auth",
                                   cwd=tmp_path, env=env)
            assert verified.returncode == 0, verified.stderr
            # The Rekor v2 log migrate created: empty, signed by its new key.
            key = KeyFiles(data_dir / "keys", None).load("tlog2").public_key
            envelope = requests.get(f"{service.url}/api/v2/checkpoint", timeout=30).text
            assert note.verify_checkpoint(envelope, note.NoteVerifier("127.0.0.1", key),
                                          "127.0.0.1").size == 0
        finally:
            service.stop()
