"""The log sequencer process of ``signer server start``: one for all of its workers.

`running` starts it (``python -m signer.service.sequencer``) before the workers, in a private
directory of its own, tells the workers where its socket is (``SIGNER_SEQUENCER_SOCKET``),
starts it again if it ever exits, and stops it after the workers. What it does and why:
`signer.service.log.handoff`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from signer.errors import Unavailable
from signer.service import database
from signer.service.bootstrap import transparency_logs
from signer.service.config import Settings
from signer.service.log import handoff
from signer.service.log.rfc6962 import Rfc6962Log

log = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
RESTART_DELAY_SECONDS = 1.0


@contextmanager
def running(settings: Settings) -> Iterator[Path]:
    """The sequencer process, for the workers started inside; yields its socket's path, also
    exported to the environment the workers inherit."""
    directory = Path(tempfile.mkdtemp(prefix="signer-sequencer-"))  # mode 0700
    path = directory / "sequencer.sock"
    env = {**os.environ, **settings.env(), handoff.SOCKET_ENV: str(path)}
    process = _start(env, path)
    stopping = threading.Event()
    guard = threading.Thread(target=_keep_running, args=(process, env, path, stopping),
                             name="sequencer-guard", daemon=True)
    guard.start()
    os.environ[handoff.SOCKET_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(handoff.SOCKET_ENV, None)
        stopping.set()
        guard.join()
        shutil.rmtree(directory, ignore_errors=True)


def _start(env: dict[str, str], path: Path) -> subprocess.Popen[bytes]:
    path.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "signer.service.sequencer"], env=env)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"The log sequencer exited at start (status {process.returncode})"
                              "; its error is above.", "Fix what it says and start again.")
        if _accepts(path):
            return process
        time.sleep(0.05)
    _stop(process)
    raise Unavailable("The log sequencer did not start within "
                      f"{START_TIMEOUT_SECONDS:.0f} s.", "Check the database and the log keys.")


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
            return True
        except OSError:
            return False


def _keep_running(process: subprocess.Popen[bytes], env: dict[str, str], path: Path,
                  stopping: threading.Event) -> None:
    """Start the sequencer again if it exits; the appends it had not committed were answered
    with an error by the workers (503, retry)."""
    while not stopping.wait(0.5):
        if process.poll() is None:
            continue
        log.error("the log sequencer exited (status %s); starting it again", process.returncode)
        time.sleep(RESTART_DELAY_SECONDS)
        try:
            process = _start(env, path)
        except Unavailable as exc:
            log.exception("%s", exc.detail)
    _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """The process: the service's logs, taking appends on the socket until its parent (the
    server) is gone or it is told to stop."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: sequencer: %(message)s")
    settings = Settings.from_env(os.environ)
    path = Path(os.environ[handoff.SOCKET_ENV])
    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    logs = {log.name: cast(Rfc6962Log, log) for log in transparency_logs(settings, engine)}
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    # SIGTERM: stop taking appends; a batch being committed finishes or rolls back whole.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handoff.serve(path, logs)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


if __name__ == "__main__":
    main()
