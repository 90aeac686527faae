"""The page's reads. Every query takes the session's namespace; nothing crosses it.

The artifacts list pages with a keyset (the sort date and the id of the row a page ends
at), never OFFSET: page 2,000 costs what page 1 does, on the indexes
``(namespace, created_at, id)`` and ``(namespace, updated_at, id)``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa

from signer.provenance import BY_KEY, matches
from signer.service.schema import artifacts, signatures
from signer.service.store import rows
from signer.service.store.records import ArtifactRecord, SignatureRecord

PAGE_SIZE = 50
# The source-repository filter lists at most this many repositories; more can be typed.
MAX_REPOSITORY_CHOICES = 200
# A short repository name is looked up among at most this many distinct repositories.
MAX_REPOSITORIES_RESOLVED = 10_000
# A name prefix matching at least this many artifacts is searched along the date index.
BROAD_PREFIX_ROWS = 2000
# An artifact with more signatures than this shows the newest ones and says so.
MAX_SIGNATURES_SHOWN = 200

Sort = Literal["updated", "created"]
Status = Literal["valid", "revoked", "mixed"]
SORTS: tuple[Sort, ...] = ("updated", "created")
STATUSES: tuple[Status, ...] = ("valid", "revoked", "mixed")


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the sort date and the id (ids break ties between equal dates)."""

    at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.at.astimezone(UTC).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """None for anything that is not a cursor this page made (the first page is shown)."""
        if not text or len(text) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, _, ident = raw.partition("|")
            when = datetime.fromisoformat(at)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if when.tzinfo is None or not ident.isalnum() or len(ident) > 32:
            return None
        return cls(when, ident)


@dataclass(frozen=True)
class ListQuery:
    name_prefix: str = ""
    name: str = ""  # exact, from a pasted ``name@sha256:…``
    digest_prefix: str = ""  # lowercase hex
    status: Status | None = None
    repositories: tuple[str, ...] | None = None  # None: any; (): none matched the filter
    sort: Sort = "updated"
    descending: bool = True
    after: Cursor | None = None
    before: Cursor | None = None
    limit: int = PAGE_SIZE


@dataclass(frozen=True)
class Page:
    rows: list[ArtifactRecord]
    newer: Cursor | None  # the `before` cursor of the previous page, if there is one
    older: Cursor | None  # the `after` cursor of the next page, if there is one


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[prefix, upper): every string that starts with prefix, as an index range."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def status_condition(status: Status) -> sa.ColumnElement[bool]:
    revoked, total = artifacts.c.revoked_count, artifacts.c.signature_count
    if status == "valid":
        return revoked == 0
    if status == "revoked":
        return sa.and_(revoked > 0, revoked >= total)
    return sa.and_(revoked > 0, revoked < total)


class PageReads:
    """What the page reads: artifacts by keyset, their repositories and signatures."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def name_prefix_conditions(self, namespace: str, prefix: str
                               ) -> list[sa.ColumnElement[bool]]:
        """Names that start with ``prefix``, case-sensitively, planned for the prefix at hand.

        A narrow prefix is an index range on (namespace, name, digest) and a small sort. A
        broad one (``ghcr.io/``) is cheaper the other way round: walk the date index in page
        order and keep the names that match, so the range is left out and the planner cannot
        pick it.
        """
        name = artifacts.c.name
        exact = sa.func.substr(name, 1, len(prefix)) == prefix
        low, high = _prefix_range(prefix)
        in_range = [name >= low, name < high]
        probe = (sa.select(sa.func.count()).select_from(
            sa.select(artifacts.c.id).where(artifacts.c.namespace == namespace, *in_range)
            .limit(BROAD_PREFIX_ROWS).subquery()))
        with self.engine.connect() as conn:
            matching = conn.execute(probe).scalar_one()
        return [exact] if matching >= BROAD_PREFIX_ROWS else [*in_range, exact]

    def list_artifacts(self, namespace: str, query: ListQuery) -> Page:
        if query.repositories == ():
            return Page([], None, None)
        key = artifacts.c.updated_at if query.sort == "updated" else artifacts.c.created_at
        conditions: list[sa.ColumnElement[bool]] = [artifacts.c.namespace == namespace]
        if query.name_prefix:
            conditions += self.name_prefix_conditions(namespace, query.name_prefix)
        if query.name:
            conditions.append(artifacts.c.name == query.name)
        if query.digest_prefix:
            prefix = query.digest_prefix
            conditions.append(sa.func.substr(artifacts.c.digest, 1, len(prefix)) == prefix)
        if query.status is not None:
            conditions.append(status_condition(query.status))
        if query.repositories is not None:
            conditions.append(artifacts.c.source_repository.in_(query.repositories))

        # Walking towards older rows when descending ("after"), or back ("before").
        backwards = query.before is not None and query.after is None
        cursor = query.before if backwards else query.after
        ascending = query.descending == backwards
        if cursor is not None:
            position = sa.tuple_(key, artifacts.c.id)
            bound = sa.tuple_(sa.literal(cursor.at, artifacts.c.created_at.type),
                              sa.literal(cursor.id))
            conditions.append(position > bound if ascending else position < bound)
        order = [key.asc(), artifacts.c.id.asc()] if ascending else [key.desc(),
                                                                       artifacts.c.id.desc()]
        select = rows.ARTIFACTS.where(*conditions).order_by(*order).limit(query.limit + 1)
        with self.engine.connect() as conn:
            found = [rows.artifact(r) for r in conn.execute(select)]
        more = len(found) > query.limit
        found = found[: query.limit]
        if backwards:
            found.reverse()
        if not found:
            return Page([], None, None)
        sort_key = "updated_at" if query.sort == "updated" else "created_at"
        first = Cursor(getattr(found[0], sort_key), found[0].id)
        last = Cursor(getattr(found[-1], sort_key), found[-1].id)
        if backwards:
            return Page(found, first if more else None, last)
        return Page(found, first if cursor is not None else None, last if more else None)

    def source_repositories(self, namespace: str, limit: int = MAX_REPOSITORY_CHOICES
                            ) -> list[str]:
        """The namespace's distinct source repositories, by a loose index scan.

        One index seek per repository (a recursive query: the smallest repository greater
        than the last), rather than reading every artifact row as DISTINCT would.
        """
        inner = artifacts.alias("inner_artifacts")
        seed = (sa.select(sa.func.min(artifacts.c.source_repository).label("repo"))
                .where(artifacts.c.namespace == namespace)
                .cte("repos", recursive=True))
        step = sa.select(
            sa.select(sa.func.min(inner.c.source_repository))
            .where(inner.c.namespace == namespace, inner.c.source_repository > seed.c.repo)
            .scalar_subquery()
        ).where(seed.c.repo.is_not(None))
        repos = seed.union_all(step)
        query = sa.select(repos.c.repo).where(repos.c.repo.is_not(None)).limit(limit)
        with self.engine.connect() as conn:
            return [str(r) for r in conn.scalars(query)]

    def resolve_repository(self, namespace: str, wanted: str,
                           every_repository: list[str] | None = None) -> tuple[str, ...]:
        """The stored repository URIs a filter means: a full URL, or a short ``org/repo``.

        Short forms compare by normalising (signer.provenance.matches), never as a substring,
        against the namespace's distinct repositories (``every_repository`` when the caller
        has read them all already; else one index seek each).
        """
        wanted = wanted.strip()
        if "://" in wanted:
            return (wanted.rstrip("/"),)
        if not wanted.strip("/"):
            return ()
        field = BY_KEY["source_repository"]
        known = every_repository if every_repository is not None else \
            self.source_repositories(namespace, MAX_REPOSITORIES_RESOLVED)
        return tuple(r for r in known if matches(field, r, wanted))

    def get_artifact(self, namespace: str, artifact_id: str) -> ArtifactRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows.ARTIFACTS.where(
                artifacts.c.namespace == namespace, artifacts.c.id == artifact_id)).first()
        return None if row is None else rows.artifact(row)

    def artifact_signatures(self, namespace: str, artifact_id: str,
                            limit: int = MAX_SIGNATURES_SHOWN) -> list[SignatureRecord]:
        """An artifact's signatures, newest first; call with an id read in ``namespace``.

        Selected by artifact id alone, so the planner takes (artifact_id, created_at) rather
        than walking the namespace's date index; rows of another namespace are dropped all
        the same.
        """
        query = (rows.WITH_REVOCATION
                 .where(signatures.c.artifact_id == artifact_id)
                 .order_by(signatures.c.created_at.desc(), signatures.c.id.desc())
                 .limit(limit))
        with self.engine.connect() as conn:
            return [rows.signature(r) for r in conn.execute(query) if r.namespace == namespace]
