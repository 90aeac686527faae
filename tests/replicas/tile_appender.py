"""One replica's Rekor v2 sequencer, as a process of its own: appends ``count`` entries to the
``tlog2`` of a data directory from several threads (so they batch), and prints one JSON line
per acknowledged entry. ``python -m tests.replicas.tile_appender DATA_DIR DB_URL|- URL TAG N``"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from signer.service import bootstrap, database, keyring
from signer.service.config import Settings
from signer.service.log import LogItem, Sequenced
from signer.service.store import Transaction

THREADS = 4


def main(data_dir: str, database_url: str, public_url: str, tag: str, count: int) -> None:
    settings = Settings(data_dir=Path(data_dir),
                        database_url=None if database_url == "-" else database_url,
                        public_url=public_url)
    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    log = bootstrap.transparency_log(settings, engine, "tlog2",
                                     keyring.load(settings.layout, "tlog2", None))
    out = threading.Lock()

    def keep(_: Transaction, entry: Sequenced) -> Sequenced:
        return entry

    def work(thread: int) -> None:
        for i in range(thread, count, THREADS):
            body = json.dumps({"replica": tag, "n": i}).encode()
            entry = log.append(LogItem("hashedrekord", "0.0.2", body, keep))
            with out:
                print(json.dumps({"index": entry.index, "body": body.decode(),
                                  "size": entry.tree_size, "root": entry.root_hash.hex(),
                                  "checkpoint": entry.checkpoint}), flush=True)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:5], int(sys.argv[5]))
