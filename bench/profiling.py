"""Where the service's time goes under load: py-spy samples of the server's processes.

``py-spy record --nonblocking --subprocesses --format raw`` (collapsed stacks, on-CPU samples
only) runs beside a load cell; the stacks are then folded two ways: *self* time by package
(which library burns the CPU) and *inclusive* time of the service's own functions (which use
case or step pays for it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 250
# A frame as py-spy writes it: "function (path/to/file.py:123)".
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
PACKAGES = [
    ("signer/", "signer (our code)"),
    ("cryptography/", "cryptography"),
    ("asn1crypto/", "asn1crypto"),
    ("jwt/", "pyjwt"),
    ("rfc3161_client/", "rfc3161-client"),
    ("rfc8785/", "rfc8785"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("psycopg", "psycopg (PostgreSQL driver)"),
    ("sqlite3/", "sqlite3"),
    ("alembic/", "alembic"),
    ("pydantic", "pydantic"),
    ("fastapi/", "FastAPI"),
    ("starlette/", "Starlette"),
    ("anyio/", "anyio (thread pool)"),
    ("uvicorn/", "uvicorn"),
    ("httptools", "uvicorn"),
    ("prometheus_client/", "prometheus-client"),
    ("json/", "json"),
    ("threading.py", "threading / locks"),
    ("concurrent/", "threading / locks"),
    ("asyncio/", "asyncio"),
    ("uvloop", "asyncio"),
    ("logging/", "logging"),
]


@dataclass(frozen=True)
class Profile:
    samples: int
    by_package: list[tuple[str, float]]  # share of samples, self time
    by_function: list[tuple[str, float]]  # share of samples, inclusive, our code only
    hottest: list[tuple[str, float]]  # share of samples, self time, any function

    @property
    def empty(self) -> bool:
        return self.samples == 0


def available() -> bool:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) is not None \
        or shutil.which("py-spy") is not None


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil",
         "--format", "raw", "--rate", str(SAMPLE_RATE), "--duration",
         str(max(1, round(seconds))), "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def command(args: list[str], output: Path) -> Profile:
    """Run a command under py-spy (all its samples, GIL held or not: one thread)."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    sampler = subprocess.Popen(
        [exe, "record", "--format", "raw", "--rate", str(SAMPLE_RATE), "--output", str(output),
         "--", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return finish(sampler, output)


def finish(process: subprocess.Popen[bytes], output: Path) -> Profile:
    _, err = process.communicate(timeout=120)
    if process.returncode != 0 or not output.exists():
        print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
        return Profile(0, [], [], [])
    return fold(output.read_text())


def _package(path: str) -> str:
    for marker, name in PACKAGES:
        if marker in path:
            return name
    return "other (stdlib, interpreter)"


def _ours(path: str) -> str | None:
    index = path.rfind("signer/")
    return path[index:] if index >= 0 else None


def fold(raw: str) -> Profile:
    """Collapsed stacks ("frame;frame;… count" per line) → shares of the samples.

    Samples taken while a module was being imported are left out: start-up, not work.
    """
    total = 0
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [FRAME.match(f.strip()) for f in stack.split(";")]
        parsed = [(m["function"], m["file"]) for m in frames if m]
        if not parsed or any("importlib" in path for _, path in parsed):
            continue  # nothing, or start-up (imports): not the work being measured
        total += count
        function, path = parsed[-1]
        packages[_package(path)] += count
        leaves[f"{function} ({_short(path)})"] += count
        seen = set()
        for function, path in parsed:
            ours = _ours(path)
            if ours and (function, ours) not in seen:
                seen.add((function, ours))
                functions[f"{ours}:{function}"] += count
    if not total:
        return Profile(0, [], [], [])

    def shares(counter: Counter[str], top: int) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counter.most_common(top)]

    return Profile(total, shares(packages, 14), shares(functions, 22), shares(leaves, 12))


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3"):
        index = path.find(marker)
        if index >= 0:
            return path[index + len(marker):].lstrip("/.0123456789")
    return _ours(path) or Path(path).name
