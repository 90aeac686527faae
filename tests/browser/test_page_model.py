"""The page's pure parts: search parsing, keyset cursors, names, statuses, provenance rows."""

from __future__ import annotations

from datetime import UTC, datetime

from signer.provenance import FIELDS, Provenance
from signer.service.store.page import Cursor
from signer.service.web.pages import when
from signer.service.web.queries import Search, parse_search
from signer.service.web.views import ArtifactName, link, provenance_groups, status

HEX = "ab" * 32


def test_search_reads_a_prefix_a_digest_or_a_reference() -> None:
    assert parse_search(" ghcr.io/acme/ ") == Search(name_prefix="ghcr.io/acme/")
    assert parse_search("sha256:ABC12") == Search(digest_prefix="abc12")
    assert parse_search(f"ghcr.io/acme/app@sha256:{HEX}") == Search(name="ghcr.io/acme/app",
                                                                    digest_prefix=HEX)
    assert parse_search("sha256:12zz") == Search(digest_prefix="12")
    assert parse_search("") == Search()


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), "f" * 32)
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "!!!", "bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMnxh", "x" * 300):
        assert Cursor.decode(bad) is None, bad


def test_names_statuses_links() -> None:
    assert ArtifactName.parse("ghcr.io/acme/app") == ArtifactName("ghcr.io/acme/app", "ghcr.io",
                                                                  "acme/app")
    assert ArtifactName.parse("localhost:5000/app").registry == "localhost:5000"
    assert ArtifactName.parse("acme/app").registry is None
    assert ArtifactName.parse("dist.tar.gz") == ArtifactName("dist.tar.gz", None, "dist.tar.gz")
    assert [status(1, 0), status(2, 2), status(3, 1)] == ["not revoked", "revoked", "mixed"]
    assert link("https://github.com/acme") == "https://github.com/acme"
    assert link("javascript:alert(1)") is None and link("acme/app") is None


def test_every_field_is_shown_with_where_it_came_from() -> None:
    declared = Provenance.declared({"source_repository_ref": "refs/heads/main"},
                                   "https://signer.example/auth", "ns")
    groups = provenance_groups(declared)
    rows = {row.key: row for group in groups for row in group.rows}
    assert list(rows) == [f.key for f in FIELDS if f.group == "identity"] + \
        [f.key for f in FIELDS if f.group == "build"] + \
        [f.key for f in FIELDS if f.group == "source"] + \
        [f.key for f in FIELDS if f.group == "service"]
    assert rows["source_repository_ref"].source == "declared"
    assert rows["issuer"].source == "service"  # an API key's issuer is the service's own
    assert rows["namespace"].source == "service"
    assert rows["build_trigger"].value is None


def test_times_render_utc_text_with_iso_attributes() -> None:
    html = str(when(datetime(2026, 5, 1, 12, 34, 56, tzinfo=UTC)))
    assert html == ('<time datetime="2026-05-01T12:34:56Z" title="2026-05-01T12:34:56Z">'
                    "2026-05-01 12:34 UTC</time>")
