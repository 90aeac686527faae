"""A real OCI registry on loopback for the registry tests: Debian's docker-registry
(distribution 2.8: no referrers API, so the referrers tag schema is what is exercised) with
an htpasswd user, started here and stopped by PID; images built by the suite's Docker engine
and pushed to it; skopeo as the reader that is not signer's code."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.action.docker_env import BASE_IMAGE, docker, engine_or_skip
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.registry.token_service import ISSUER, SERVICE, TokenService
from tests.service_process import Service, Tenant, free_port

PREREQ = "scripts/prereqs/70-registry.sh installs docker-registry, skopeo, apache2-utils"
USER, PASSWORD = "ci-bot", "correct horse battery staple"


@dataclass
class LocalRegistry:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    token_service: TokenService | None = None  # auth: token (Bearer) instead of htpasswd

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def docker_config(self) -> Path:
        """A DOCKER_CONFIG directory written by 'docker login' itself (auths, base64)."""
        return self.root / "docker-config"

    def start(self) -> None:
        htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True,
                                  text=True, check=True).stdout
        (self.root / "htpasswd").write_text(htpasswd)
        auth = f"  htpasswd:\n    realm: signer-test\n    path: {self.root / 'htpasswd'}\n"
        if self.token_service is not None:
            root = self.token_service.write_root(self.root / "token-root.pem")
            auth = (f"  token:\n    realm: {self.token_service.url}\n    service: {SERVICE}\n"
                    f"    issuer: {ISSUER}\n    rootcertbundle: {root}\n")
        (self.root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"http:\n  addr: {self.host}\n  secret: {uuid.uuid4().hex}\n"
            f"auth:\n{auth}")
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(["docker-registry", "serve", str(self.root / "config.yml")],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        for _ in range(100):
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError((self.root / "registry.log").read_text())
        self.docker_config.mkdir()
        if self.token_service is not None:  # docker's own config format, written by hand
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            (self.docker_config / "config.json").write_text(
                json.dumps({"auths": {self.host: {"auth": auth}}}))
            return
        login = subprocess.run(["docker", "--config", str(self.docker_config), "login", "-u",
                                USER, "--password-stdin", self.host], input=PASSWORD,
                               capture_output=True, text=True, timeout=60, check=False)
        assert login.returncode == 0, login.stderr

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # our own process group, by PID
            self.process.wait(timeout=15)

    def push_image(self, repository: str, content: str) -> str:
        """Build FROM the local base image with one file, push it; the pushed digest."""
        context = self.root / f"ctx-{uuid.uuid4().hex[:8]}"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY content.txt /content.txt\n")
        (context / "content.txt").write_text(content)
        tag = f"{self.host}/{repository}:1"
        docker("build", "-q", "-t", tag, str(context),
               env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=300)
        pushed = docker("--config", str(self.docker_config), "push", tag, timeout=600).stdout
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        assert digest, pushed
        return f"{self.host}/{repository}@{digest.group(1)}"

    def copy_from(self, source: LocalRegistry, image: str) -> str:
        """``skopeo copy`` an image from another registry here; the same digest."""
        _, rest = image.split("/", 1)
        repository, digest = rest.split("@")
        done = subprocess.run(
            ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
             "--src-creds", f"{USER}:{PASSWORD}", "--dest-creds", f"{USER}:{PASSWORD}",
             "--preserve-digests", f"docker://{image}",
             f"docker://{self.host}/{repository}:1"],
            capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        return f"{self.host}/{repository}@{digest}"

    def skopeo_raw(self, reference: str, check: bool = True) -> bytes | None:
        """``skopeo inspect --raw docker://HOST/REPO:TAG|@DIGEST``: the registry's bytes.
        Unchecked, a failed read is None (distribution answers 500 to a read of a tag that
        is being rewritten)."""
        done = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
             f"{USER}:{PASSWORD}", f"docker://{reference}"],
            capture_output=True, timeout=60, check=False)
        if not check and done.returncode != 0:
            return None
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout


@pytest.fixture(scope="session")
def backend() -> str:
    """The store is not what these tests are about: SQLite only."""
    return "sqlite"


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    engine_or_skip()
    for tool in ("docker-registry", "skopeo", "htpasswd"):
        if shutil.which(tool) is None:
            pytest.skip(f"no {tool}: {PREREQ}")
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"), free_port())
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, local_registry: LocalRegistry
                   ) -> Iterator[LocalRegistry]:
    """A second registry in ``auth: token`` mode: the distribution token flow."""
    tokens = TokenService(USER, PASSWORD)
    reg = LocalRegistry(tmp_path_factory.mktemp("token-registry"), free_port(),
                        token_service=tokens)
    reg.start()
    yield reg
    reg.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def image(local_registry: LocalRegistry) -> str:
    """``127.0.0.1:PORT/app@sha256:…`` of a real image in the registry."""
    return local_registry.push_image("app", "the app\n")


@dataclass
class Signing:
    service: Service
    issuer: FakeGitHubIssuer
    tenant: Tenant
    registry: LocalRegistry
    trust_root: Path
    workdir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.issuer.runner_env(), "SIGNER_NAMESPACE": self.tenant.namespace,
                "DOCKER_CONFIG": str(self.registry.docker_config), **extra}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.service.cli(*args, cwd=self.workdir, env=self.env(**env), timeout=120)

    def sign(self, name: str, *extra: str, **env: str) -> dict:
        done = self.cli("artifact", "sign", "--name", name, "--enable-github-action-token",
                        "--output", "json", *extra, **env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def verify(self, name: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.cli("artifact", "verify", "--name", name, "--from-registry",
                        "--trust-root", str(self.trust_root),
                        "--certificate-oidc-issuer", self.issuer.url, *extra, **env)


@pytest.fixture
def signing(service: Service, issuer: FakeGitHubIssuer, tenant: Tenant,
            local_registry: LocalRegistry, tmp_path: Path) -> Signing:
    trust_root = tmp_path / "trusted_root.json"
    done = service.cli("trust-root", "export", "--out", str(trust_root))
    assert done.returncode == 0, done.stderr
    return Signing(service, issuer, tenant, local_registry, trust_root, tmp_path)
