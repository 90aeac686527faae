"""A faked GitHub runner for the three actions: the files, the event and the INPUT_* variables
a real runner prepares, built from each action.yml by the runner's own rules.

``FakeRunner.run`` starts ``entrypoint.py <command>`` as a subprocess, as the container the
composite action's step runs (docker-action.sh) starts it; the docker tests reuse the same
layout and mount it as the runner does (``/github/file_commands`` …).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import Service, Tenant, clean_env, init

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "entrypoint.py"
ACTIONS = {"sign": ROOT / "action.yml", "verify": ROOT / "verify" / "action.yml",
           "revoke": ROOT / "revoke" / "action.yml", "attest": ROOT / "attest" / "action.yml"}
_DELIMITED = re.compile(r"^([^=\n]+)<<(.+)$")


def load_action(command: str) -> dict[str, Any]:
    return dict(yaml.safe_load(ACTIONS[command].read_text()))


def input_env(action: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """What the runner exports for a step: every declared input as ``INPUT_<NAME>`` (upper-case,
    spaces → ``_``, hyphens kept) with the given value or the default (empty without one),
    and the undeclared ``with:`` keys too (the runner only warns about those)."""
    declared = action.get("inputs") or {}
    values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    values.update(given)
    return {"INPUT_" + name.replace(" ", "_").upper(): value for name, value in values.items()}


def parse_outputs(text: str) -> dict[str, str]:
    """The runner's reading of a GITHUB_OUTPUT file: ``name=value`` or ``name<<DELIM`` … ``DELIM``."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        match = _DELIMITED.match(line)
        if match:
            name, delimiter = match.groups()
            value: list[str] = []
            while lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            i += 1
            outputs[name] = "\n".join(value)
        else:
            name, _, value_text = line.partition("=")
            outputs[name] = value_text
    return outputs


def delimiters(text: str) -> list[str]:
    return [m.group(2) for m in map(_DELIMITED.match, text.split("\n")) if m]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    output_text: str
    summary: str
    env_file: str

    @property
    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output_text)

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


@dataclass
class FakeRunner:
    """One job's runner directories: ``_temp/_runner_file_commands``, ``_github_workflow``,
    ``_github_home`` and the workspace; one step at a time, like the runner."""

    root: Path
    issuer: FakeGitHubIssuer
    service: Service
    tenant: Tenant
    event: dict[str, Any] = field(default_factory=lambda: {
        "ref": "refs/tags/v1.2.3", "repository": {"full_name": "acme/app"}})
    event_name: str = "push"
    github_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for sub in ("workspace", "file_commands", "workflow", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def paths(self, container: bool = False) -> dict[str, str]:
        """A fresh set of file-command files for the next step (as the runner makes them)."""
        step = uuid.uuid4()
        files = {"GITHUB_OUTPUT": f"set_output_{step}", "GITHUB_STEP_SUMMARY": f"step_summary_{step}",
                 "GITHUB_ENV": f"set_env_{step}", "GITHUB_PATH": f"add_path_{step}",
                 "GITHUB_STATE": f"save_state_{step}"}
        for name in files.values():
            (self.root / "file_commands" / name).touch()
        (self.root / "workflow" / "event.json").write_text(json.dumps(self.event))
        base = {"commands": "/github/file_commands", "workflow": "/github/workflow",
                "workspace": "/github/workspace", "home": "/github/home"} if container else {
                "commands": str(self.root / "file_commands"),
                "workflow": str(self.root / "workflow"),
                "workspace": str(self.workspace), "home": str(self.root / "home")}
        env = {k: f"{base['commands']}/{v}" for k, v in files.items()}
        env.update(GITHUB_EVENT_PATH=f"{base['workflow']}/event.json",
                   GITHUB_WORKSPACE=base["workspace"], HOME=base["home"])
        return env

    def github_variables(self) -> dict[str, str]:
        """The runner's default variables for acme/app's release workflow (matching the token)."""
        claims = self.issuer.claims(**self.issuer.runner_claims)
        return {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat",
            "GITHUB_REPOSITORY": claims["repository"],
            "GITHUB_REPOSITORY_OWNER": claims["repository_owner"],
            "GITHUB_REF": claims["ref"], "GITHUB_REF_NAME": claims["ref"].rsplit("/", 1)[-1],
            "GITHUB_SHA": claims["sha"], "GITHUB_WORKFLOW": claims["workflow"],
            "GITHUB_WORKFLOW_REF": claims["workflow_ref"],
            "GITHUB_WORKFLOW_SHA": claims["workflow_sha"],
            "GITHUB_RUN_ID": claims["run_id"], "GITHUB_RUN_ATTEMPT": claims["run_attempt"],
            "GITHUB_RUN_NUMBER": claims["run_number"], "GITHUB_EVENT_NAME": self.event_name,
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_JOB": "sign", "GITHUB_ACTION": "__acme_signer",
            "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_ENVIRONMENT": "github-hosted",
            "RUNNER_TEMP": "/home/runner/work/_temp", "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
        }

    def step_env(self, command: str, given: Mapping[str, str], token: bool = True,
                 container: bool = False, **extra: str) -> dict[str, str]:
        env = {**self.github_variables(), **self.paths(container)}
        if token:
            env.update(self.issuer.runner_env())
        env.update(input_env(load_action(command), {
            "api_url": self.service.url, "namespace": self.tenant.namespace, **given}))
        env.update(self.github_env)
        env.update(extra)
        return env

    def run(self, command: str, timeout: float = 60, token: bool = True, **given: str
            ) -> Result:
        env = self.step_env(command, given, token)
        done = subprocess.run([sys.executable, str(ENTRYPOINT), command], cwd=self.workspace,
                              env=clean_env(**env), capture_output=True, text=True,
                              timeout=timeout)
        return self.result(env, done.returncode, done.stdout, done.stderr)

    def result(self, env: Mapping[str, str], returncode: int, stdout: str, stderr: str
               ) -> Result:
        def read(var: str) -> str:
            name = Path(env[var]).name
            return (self.root / "file_commands" / name).read_text()

        return Result(returncode, stdout, stderr, read("GITHUB_OUTPUT"),
                      read("GITHUB_STEP_SUMMARY"), read("GITHUB_ENV"))


@pytest.fixture(scope="session")
def service(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    """The action is glue above the client: one store (SQLite) is enough here; tests/integration
    runs both. Its own service, so the suite-wide parametrized one is not shadowed."""
    data_dir = tmp_path_factory.mktemp("action-service") / "data"
    svc = Service(data_dir, init(data_dir), issuer.url)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def runner(tmp_path: Path, issuer: FakeGitHubIssuer, service: Service, tenant: Tenant
           ) -> Iterator[FakeRunner]:
    issuer.runner_claims = {}
    issuer.runner_allowed = True
    yield FakeRunner(tmp_path / "runner", issuer, service, tenant)
    issuer.runner_claims = {}
    issuer.runner_allowed = True


@pytest.fixture(scope="session")
def action_image() -> str:
    """The action image, built once per session from the Dockerfile (legacy builder)."""
    from tests.action.docker_env import build_image

    return build_image()[0]
