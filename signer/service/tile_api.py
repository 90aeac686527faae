"""The Rekor v2 log's read API: C2SP tlog-tiles (https://c2sp.org/tlog-tiles).

Under ``/api/v2``, beside the v2 write API (``POST /api/v2/log/entries``), where rekor-tiles'
service routes them: ``checkpoint`` (the signed note, mutable: cached for a second),
``tile/<L>/<N>[.p/<W>]`` (hashes) and ``tile/entries/<N>[.p/<W>]`` (entry bundles), both
immutable once they exist. All public, like Rekor's: an entry is what a v2 client uploaded
to a public log.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from signer.errors import UsageError
from signer.service.dependencies import RuntimeDep
from signer.service.log.tiles import READ_PATH
from signer.transparency import tiles

CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"
TILE_MEDIA_TYPE = "application/octet-stream"
# A tile or bundle of a given width never changes (the tree only grows): cache it for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=1"


def router() -> APIRouter:
    api = APIRouter(prefix=READ_PATH, tags=["transparency log v2 (C2SP tiles)"])

    @api.get("/checkpoint", response_class=Response,
             responses={200: {"content": {CHECKPOINT_MEDIA_TYPE: {}}}})
    def checkpoint(rt: RuntimeDep) -> Response:
        return Response(rt.service.tlog_v2.head().checkpoint, media_type=CHECKPOINT_MEDIA_TYPE,
                        headers={"Cache-Control": CHECKPOINT_CACHE})

    @api.get("/tile/{path:path}", response_class=Response,
             responses={200: {"content": {TILE_MEDIA_TYPE: {}}}})
    def tile(path: str, rt: RuntimeDep) -> Response:
        """``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]``."""
        try:
            entries, coordinates = tiles.parse_path(f"tile/{path}")
        except tiles.TileError as exc:
            raise UsageError(f"{exc}.", "Ask for tile/<L>/<N>[.p/<W>] or "
                             "tile/entries/<N>[.p/<W>], e.g. tile/0/x001/234.p/7.") from exc
        log = rt.service.tlog_v2
        data = log.entry_bundle(coordinates) if entries else log.tile(coordinates)
        return Response(data, media_type=TILE_MEDIA_TYPE, headers={"Cache-Control": IMMUTABLE})

    return api
