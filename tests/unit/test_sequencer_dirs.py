"""The sequencer's socket directories: a server killed outright leaves its own behind; the
next start removes those of servers that are gone, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from signer.service import sequencer


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_directories_of_servers_that_are_gone_are_removed(tmp_path: Path) -> None:
    prefix = sequencer.DIRECTORY_PREFIX
    gone = tmp_path / f"{prefix}{_dead_pid()}-abc"
    alive = tmp_path / f"{prefix}{os.getpid()}-def"
    unrelated = tmp_path / f"{prefix}notapid-ghi"
    for directory in (gone, alive, unrelated):
        directory.mkdir()
        (directory / "sequencer.sock").touch()
    sequencer.remove_stale(tmp_path)
    assert not gone.exists()
    assert alive.exists() and unrelated.exists()
