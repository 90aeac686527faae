"""Start and stop a real ``signer server`` process on loopback, as an operator would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from signer.client import Client
from signer.errors import Conflict, RateLimited
from tests import softhsm

BIN = Path(sys.executable).parent
SIGNER = str(BIN / "signer")
START_TIMEOUT = 30.0
PROVISION_ATTEMPTS = 30  # seconds of waiting out the admin key's rate limit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would have: no SIGNER_* or runner variables leaking in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNER_", "ACTIONS_ID_TOKEN", "GITHUB_", "INPUT_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    if softhsm.token_keys():
        env["SIGNER_PKCS11_PIN"] = softhsm.PIN  # the test token's; SOFTHSM2_CONF is inherited
    env.update(extra)
    return env


POSTGRES_URL_ENV = "SIGNER_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def database(backend: str) -> Iterator[str | None]:
    """None for SQLite in the data dir; for PostgreSQL a fresh database, dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    import psycopg

    admin_url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    name = f"signer_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def init(data_dir: Path, database_url: str | None = None, **env: str) -> str:
    """``signer server init``; with SIGNER_TEST_KEYS=pkcs11, every key on a new SoftHSM2 token."""
    args = [SIGNER, "server", "init", "--data-dir", str(data_dir)]
    if database_url:
        args += ["--database-url", database_url]
    if softhsm.token_keys():
        args += softhsm.session_token()
    done = subprocess.run(args, capture_output=True, text=True, env=clean_env(**env), check=True)
    return done.stdout.strip()


@dataclass
class Tenant:
    namespace: str
    api_key: str
    owner: str


@dataclass
class Service:
    data_dir: Path
    admin_key: str
    issuer_url: str
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # The fake issuer mints GitHub-shaped tokens: declared so (signer issuer add) at the first
    # start, as an operator would; None leaves it undeclared (a generic issuer).
    issuer_kind: str | None = "github"
    insecure_option: bool = True  # also allow the fake issuer with --insecure-issuer
    _declared: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.port}.log"

    def start(self) -> None:
        insecure = ["--insecure-issuer", self.issuer_url] if self.insecure_option else []
        args = [SIGNER, "server", "start", "--data-dir", str(self.data_dir), "--port",
                str(self.port), *insecure, "--workers", str(self.workers), *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        env=clean_env(**self.env), start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"signer server exited:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    self._declare_issuer()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"signer server did not become ready:\n{self.log_path.read_text()}")

    def _declare_issuer(self) -> None:
        if self.issuer_kind is None or self._declared:
            return
        with contextlib.suppress(Conflict):  # declared by another replica on this database
            self.provision("POST", "/v1/issuers", {"url": self.issuer_url,
                                                   "type": self.issuer_kind, "allow_http": True})
        self._declared = True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)  # our own process group, by PID
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def sql(self, query: str) -> list[Any]:
        """Read the service's database directly, as an operator with a SQL shell would."""
        import sqlalchemy as sa

        from signer.service.database import database_url

        engine = sa.create_engine(database_url(self.database_url, self.data_dir))
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(query)))
        finally:
            engine.dispose()

    def admin(self) -> Client:
        return Client(self.url, self.admin_key)

    def tenant(self, owner: str = "acme", permissions: str = "sign,verify,revoke",
               claims: dict[str, str] | None = None) -> Tenant:
        """A fresh namespace with a policy for the test issuer and an API key."""
        namespace = f"ns-{uuid.uuid4().hex[:10]}"
        self.provision("POST", "/v1/namespaces", {"name": namespace})
        self.provision("POST", f"/v1/namespaces/{namespace}/policies", {
            "issuer": self.issuer_url, "claims": claims or {"repository_owner": owner},
            "permissions": permissions.split(",")})
        key = self.provision("POST", f"/v1/namespaces/{namespace}/api-keys", {
            "name": "ci", "permissions": permissions.split(",")})
        return Tenant(namespace, key["token"], owner)

    def provision(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """An admin request of a test's set-up. The admin key has a rate limit like any
        other key (200 at once, 50 a second), which a suite creating hundreds of namespaces
        exceeds; like an operator's provisioning script, this waits the 429 out."""
        for _ in range(PROVISION_ATTEMPTS):
            try:
                return self.admin().request(method, path, json=body)
            except RateLimited:
                time.sleep(1)
        return self.admin().request(method, path, json=body)

    def cli(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SIGNER, *args], capture_output=True, text=True, cwd=cwd,
                              env=clean_env(**{"SIGNER_API": self.url, **(env or {})}), timeout=timeout)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return requests.post(self.url + path, headers=headers, timeout=30, **kwargs)
