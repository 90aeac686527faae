"""A real service to measure: fresh data directory and database, started as an operator would.

The same harness the integration tests use (``tests.service_process``): ``signer server
init`` then ``signer server start --workers N`` on loopback, SQLite in the data directory or
a fresh PostgreSQL database (dropped afterwards), and the fake GitHub OIDC issuer.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, database, init

TOKEN_LIFETIME_SECONDS = 3600
# The per-principal rate limit (signer.service.limits) is off: the benchmark measures how
# much the service can do, not how much one credential may.
SERVICE_ENV = {"SIGNER_RATE_LIMIT": "0"}


@dataclass
class Stack:
    backend: str
    service: Service
    tenant: Tenant
    issuer: FakeGitHubIssuer
    database_url: str | None

    def tokens(self, count: int) -> list[str]:
        """Pre-minted OIDC tokens, valid for the whole run: one per client, each for its own
        repository (its own identity), as many pipelines signing at once would be."""
        now = int(time.time())
        return [self.issuer.token(repository=f"acme/app{i}", exp=now + TOKEN_LIFETIME_SECONDS)
                for i in range(count)]


@contextmanager
def running(issuer: FakeGitHubIssuer, backend: str, workers: int = 1) -> Iterator[Stack]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signer-bench-")))
        url = stack.enter_context(database(backend))
        data_dir = tmp / "data"
        service = Service(data_dir, init(data_dir, url), issuer.url, database_url=url,
                          workers=workers, env=dict(SERVICE_ENV))
        service.start()
        stack.callback(service.stop)
        tenant = service.tenant(owner="acme")
        yield Stack(backend, service, tenant, issuer, url)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of a process group (a service and
    its uvicorn workers: the harness starts each service in its own session)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 of proc(5): state; pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS
