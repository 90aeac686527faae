"""The log sequencer process of ``signer server start``: one for all of its workers.

`running` starts it (``python -m signer.service.sequencer``) before the workers, in a private
directory of its own, tells the workers where its socket is (``SIGNER_SEQUENCER_SOCKET``),
starts it again if it ever exits, and stops it after the workers. What it does and why:
`signer.service.log.handoff`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from signer.errors import SignerError
from signer.service import database
from signer.service.bootstrap import transparency_logs
from signer.service.config import Settings
from signer.service.log import handoff
from signer.service.log.rfc6962 import Rfc6962Log

log = logging.getLogger(__name__)
DIRECTORY_PREFIX = "signer-sequencer-"
STOP_TIMEOUT_SECONDS = 10.0
RESTART_DELAY_SECONDS = 0.2
RESTART_DELAY_MAX_SECONDS = 30.0


@contextmanager
def running(settings: Settings, meanwhile: Callable[[], object]) -> Iterator[Path]:
    """The sequencer process, for the workers started inside; yields its socket's path, also
    exported to the environment the workers inherit. ``meanwhile`` runs while it starts (the
    server's own start-up check). The workers start without waiting for it: a worker waits
    for its socket at its first append (`handoff.Handoff`), and /readyz says ready only once
    the sequencer takes connections."""
    remove_stale(Path(tempfile.gettempdir()))
    # Mode 0700; named for this server's PID, so a later start can tell it is stale.
    directory = Path(tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-"))
    path = directory / "sequencer.sock"
    env = {**os.environ, **settings.env(), handoff.SOCKET_ENV: str(path)}
    process = _spawn(env, path)
    try:
        meanwhile()
    except BaseException:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)
        raise
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


def remove_stale(temp: Path) -> None:
    """Remove the socket directories of servers that are gone: one killed outright (SIGKILL,
    out of memory) leaves its directory behind, as its sequencer died with it."""
    for found in temp.glob(f"{DIRECTORY_PREFIX}*-*"):
        pid = found.name.removeprefix(DIRECTORY_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or found.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # still running (or a PID reused since): leave it
        except ProcessLookupError:
            shutil.rmtree(found, ignore_errors=True)
        except OSError:
            continue


def _spawn(env: dict[str, str], path: Path) -> subprocess.Popen[bytes]:
    path.parent.mkdir(mode=0o700, exist_ok=True)  # a sequencer that exits takes it along
    path.unlink(missing_ok=True)
    # Its stdin is its lifeline: at EOF (this process gone, however) it exits.
    return subprocess.Popen([sys.executable, "-m", "signer.service.sequencer"], env=env,
                            stdin=subprocess.PIPE)


def _keep_running(process: subprocess.Popen[bytes], env: dict[str, str], path: Path,
                  stopping: threading.Event) -> None:
    """Start the sequencer again if it exits; the appends it had not committed were answered
    with an error by the workers (503, retry). One that keeps failing (its error is logged
    above) is started again at most every RESTART_DELAY_MAX_SECONDS."""
    delay = RESTART_DELAY_SECONDS
    started = time.monotonic()
    while not stopping.wait(0.1):
        if process.poll() is None:
            if time.monotonic() - started > RESTART_DELAY_MAX_SECONDS:
                delay = RESTART_DELAY_SECONDS  # it ran a while: the next failure is news
            continue
        log.error("the log sequencer exited (status %s); starting it again in %.1f s",
                  process.returncode, delay)
        if stopping.wait(delay):
            break
        process, started = _spawn(env, path), time.monotonic()
        delay = min(delay * 2, RESTART_DELAY_MAX_SECONDS)
    _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # EOF: it stops taking appends and exits
    if process.poll() is None:
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
    try:
        logs = {log.name: cast(Rfc6962Log, log) for log in transparency_logs(settings, engine)}
    except SignerError as exc:  # the server's own check says the same, with its fix
        log.error("%s", exc.explain())  # noqa: TRY400 - the message is the diagnosis
        sys.exit(2)
    # A SIGTERM or Ctrl-C to the server's process group: the workers finish their requests,
    # which need the sequencer; it exits after them, when the server closes its stdin (or dies).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_at_eof, args=(path,), daemon=True).start()
    handoff.serve(path, logs)


def _exit_at_eof(path: Path) -> None:
    sys.stdin.buffer.read()
    # A batch being committed is cut off and rolls back whole: its workers are gone.
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    os._exit(0)


if __name__ == "__main__":
    main()
