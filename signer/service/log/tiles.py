"""The Rekor v2 log: a C2SP tile log (https://c2sp.org/tlog-tiles) in the service's database.

Its tree is stored and sequenced exactly like the v1 log's (`rfc6962.Rfc6962Log`: every
perfect subtree in ``log_nodes``, one sequencer at a time under the tree's row lock, group
commit), so it has the same never-fork guarantee. What differs is what it publishes:

- checkpoints are C2SP signed notes (`signer.transparency.note`) whose origin and key name
  are the log's host name (`note.sigstore_log_name`, what sigstore-go verifies against);
- no inclusion promise and no integrated time in the answer (Rekor v2 clients take the time
  from an RFC 3161 timestamp); the time is still stored with the entry;
- the tree is read as tiles: a tile's hashes are the ``log_nodes`` of level 8·L
  (`signer.transparency.tiles`), an entry bundle is the bodies of ``log_entries``.

``append`` contract (the v2 write API): ``LogItem(kind="hashedrekord"|"dsse",
version="0.0.2", body=<the canonical JSON body>, write=…)``; the body is at most 65,535 bytes
(an entry bundle's length prefix). The ``Sequenced`` result carries the entry's ``index``, the
``checkpoint`` (signed note) of ``tree_size``/``root_hash``, and the inclusion ``proof`` in
it; ``signed_entry_timestamp`` is None. The TransparencyLogEntry's ``logId.keyId`` is
``log.log_id`` (the checkpoint key id) and its ``integratedTime`` is 0.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from signer.errors import NotFound, UsageError
from signer.service.keys import KeySigner
from signer.service.log import LogItem
from signer.service.log.rfc6962 import Rfc6962Log, TreeNodes
from signer.transparency import note, tiles
from signer.transparency.checkpoint import Checkpoint

# Where the C2SP read API lives below the log's base URL: next to the write API
# (<base>/api/v2/log/entries), as rekor-tiles' rekor_service.proto routes it.
READ_PATH = "/api/v2"


class TileLog(Rfc6962Log):
    """signer.service.log.TransparencyLog, published as C2SP tiles with signed-note
    checkpoints."""

    def __init__(self, name: str, engine: sa.Engine, signer: KeySigner, base_url: str) -> None:
        super().__init__(name, engine, signer, base_url, signs_entries=False)
        self.signer_name = note.sigstore_log_name(self.base_url)
        # The C2SP checkpoint key id: what the trust root's logId.keyId and checkpointKeyId
        # hold, and a v2 entry's logId (for ECDSA the SHA-256 of the key, as in v1).
        self.log_id = note.log_id(self.signer_name, signer.public_key)
        self.prefix = self.base_url + READ_PATH

    def origin(self, tree_id: int) -> str:
        return self.signer_name  # one origin for the log's life; the tree id stays internal

    def _sign(self, tree_id: int, size: int, root: bytes) -> str:
        return note.sign_note(Checkpoint(self.origin(tree_id), size, root).body(),
                              self.signer_name, self.signer)

    def _signed_by_active_key(self, envelope: str) -> bool:
        wanted = note.key_id(self.signer_name, self.signer.public_key)
        try:
            return any(s.name == self.signer_name and s.key_id == wanted
                       for s in note.parse_note(envelope).signatures)
        except note.NoteError:
            return False

    def admit(self, item: LogItem[Any]) -> None:
        if len(item.body) > tiles.MAX_ENTRY_SIZE:
            raise UsageError(f"The entry is {len(item.body)} bytes; this log takes entries of "
                             f"at most {tiles.MAX_ENTRY_SIZE} bytes.",
                             "Log a smaller entry (fewer or shorter signatures).")

    # -- the C2SP read API ----------------------------------------------------------------------
    def tile(self, tile: tiles.Tile) -> bytes:
        """The hashes of ``tile``, once the tree has them all; else NotFound."""
        size = self.head().size
        if tiles.level_width(size, tile.level) < tile.index * tiles.TILE_WIDTH + tile.width:
            raise NotFound(f"The {self.name} (size {size}) has no {tile.path()}.",
                           "Fetch the checkpoint first and only the tiles its size needs.")
        with self.engine.connect() as conn:
            return tiles.tile_data(tile, TreeNodes(conn, self.name))

    def entry_bundle(self, tile: tiles.Tile) -> bytes:
        """The entries of level-0 tile ``tile``, once the tree has them all; else NotFound."""
        size = self.head().size
        start = tile.index * tiles.TILE_WIDTH
        if size < start + tile.width:
            raise NotFound(f"The {self.name} (size {size}) has no {tile.entries_path()}.",
                           "Fetch the checkpoint first and only the bundles its size needs.")
        bodies = [r.body for r in self.entries_range(start, start + tile.width - 1)]
        return tiles.entry_bundle(bodies)
