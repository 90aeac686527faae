"""The three action.yml files agree with signer.action, and the runner glue speaks the
runner's formats (INPUT_ names, workflow commands, environment files)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from signer.action import in_action_terms, runner_provenance
from signer.action.inputs import INPUTS, OUTPUTS, PROVENANCE
from signer.action.runner import (
    Input,
    Runner,
    command,
    env_name,
    output_record,
    parse_boolean,
    read_inputs,
)
from signer.action.summary import failed_step_name, step_rows
from signer.errors import UsageError
from signer.provenance import FLAG_FIELDS
from signer.verification import EntryResult, StepFailed
from signer.verification.verifier import STEPS
from tests.action.conftest import ACTIONS, ROOT, load_action, parse_outputs

GENERATED = ".github/.tmp/.generated-actions/signer-{}"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_yml_runs_the_container_with_the_runners_inputs(name: str) -> None:
    """Composite: docker-action.sh writes the container action, the next step runs it with
    every input as the runner would export it, outputs come from that step, and the written
    action is removed whatever happened."""
    action = load_action(name)
    runs = action["runs"]
    assert runs["using"] == "composite"
    choose, run, remove = runs["steps"]
    script = ACTIONS[name].parent / choose["run"].split('"')[1].replace("$GITHUB_ACTION_PATH/", "")
    assert script.resolve() == ROOT / "docker-action.sh"
    assert choose["run"].split()[-1] == name and choose["shell"] == "bash"
    assert run["id"] == "run" and run["uses"] == "./" + GENERATED.format(name)
    assert "with" not in run, "a generated action declares no inputs: they arrive as INPUT_*"
    inputs_env = {k: v for k, v in run["env"].items() if k.startswith("INPUT_")}
    assert inputs_env == {env_name(i): f"${{{{ inputs.{i} }}}}" for i in action["inputs"]}
    registry = set(run["env"]) - set(inputs_env)
    # Only sign and attest (push_to_registry) and verify (bundle_source: registry) reach a
    # registry.
    assert registry == (set() if name == "revoke" else {"DOCKER_CONFIG", "GITHUB_TOKEN"})
    assert remove["if"] == "always()" and GENERATED.format(name) in remove["run"]
    assert {k: v["value"] for k, v in action["outputs"].items()} == {
        k: f"${{{{ steps.run.outputs.{k} }}}}" for k in OUTPUTS[name]}


def generate(tmp_path: Path, command: str, record: str | None, **env: str
             ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """docker-action.sh of an action checkout in tmp_path, with or without action-image.txt."""
    checkout, workspace = tmp_path / "action", tmp_path / "workspace"
    (checkout / command).mkdir(parents=True)
    workspace.mkdir()
    shutil.copy2(ROOT / "docker-action.sh", checkout)
    (checkout / "Dockerfile").write_text("FROM scratch\n")
    if record is not None:
        (checkout / "action-image.txt").write_text(record)
    done = subprocess.run([str(checkout / command / ".." / "docker-action.sh"), command],
                          env={"PATH": os.environ["PATH"], "GITHUB_WORKSPACE": str(workspace),
                               **env},
                          capture_output=True, text=True, timeout=30)
    return done, workspace / GENERATED.format(command) / "action.yml"


def test_a_released_ref_runs_its_image_by_digest(tmp_path: Path) -> None:
    image = f"ghcr.io/acme/signer@sha256:{'a' * 64}"
    done, generated = generate(tmp_path, "verify", image + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running the released image {image}" in done.stdout
    assert yaml.safe_load(generated.read_text())["runs"] == {
        "using": "docker", "image": f"docker://{image}", "args": ["verify"]}


def test_a_ref_without_a_released_image_builds_the_dockerfile(tmp_path: Path) -> None:
    done, generated = generate(tmp_path, "sign", None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "has no released image" in done.stdout
    runs = yaml.safe_load(generated.read_text())["runs"]
    assert runs["using"] == "docker" and runs["args"] == ["sign"]
    assert (generated.parent / runs["image"]).resolve() == tmp_path / "action" / "Dockerfile"


@pytest.mark.parametrize(("name", "when"), [("sign", "inputs.push_to_registry == 'true'"),
                                            ("verify", "inputs.bundle_source == 'registry'")])
def test_docker_config_is_copied_where_the_container_sees_it(
        tmp_path: Path, name: str, when: str) -> None:
    """Only when the registry is used: the runner's config.json, owner-only, next to the
    generated action (removed with it), named by the container step's DOCKER_CONFIG relative
    to the workspace, its workdir; and nothing of it is printed."""
    choose, run, _ = load_action(name)["runs"]["steps"]
    copy = GENERATED.format(name) + "/docker-config"
    assert choose["env"] == {"SIGNER_DOCKER_CONFIG": f"${{{{ {when} && 'copy' || '' }}}}"}
    assert run["env"]["DOCKER_CONFIG"] == f"${{{{ {when} && '{copy}' || '' }}}}"
    assert run["env"]["GITHUB_TOKEN"].startswith(f"${{{{ {when} && ")
    config = tmp_path / "runner-docker"
    config.mkdir()
    secret = '{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpodW50ZXIy"}}}'
    (config / "config.json").write_text(secret)
    done, _ = generate(tmp_path, name, None, SIGNER_DOCKER_CONFIG="copy",
                               DOCKER_CONFIG=str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    copied = tmp_path / "workspace" / copy / "config.json"
    assert copied.read_text() == secret
    assert copied.stat().st_mode & 0o077 == 0 and copied.parent.stat().st_mode & 0o077 == 0
    assert "dXNlcjpodW50ZXIy" not in done.stdout + done.stderr
    assert f"registry credentials from Docker's config ({config}/config.json)" in done.stdout
    done, _ = generate(tmp_path / "again", name, None, DOCKER_CONFIG=str(config))
    assert not (tmp_path / "again" / "workspace" / copy).exists(), "not used: not copied"


def test_a_tag_is_not_an_image_to_run(tmp_path: Path) -> None:
    done, generated = generate(tmp_path, "revoke", "ghcr.io/acme/signer:v1\n")
    assert done.returncode == 2
    assert done.stdout.startswith("::error title=signer action::")
    assert "not an image pinned by digest" in done.stdout
    assert not generated.exists()


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_yml_matches_the_code(name: str) -> None:
    action = load_action(name)
    assert action["name"] and action["description"] and action["branding"]
    declared = action["inputs"]
    specs = {spec.name: spec for spec in INPUTS[name]}
    assert set(declared) == set(specs)
    for input_name, meta in declared.items():
        spec = specs[input_name]
        assert re.fullmatch(r"[a-z][a-z0-9_]*", input_name), "snake_case"
        assert meta["description"].strip(), input_name
        assert bool(meta.get("required", False)) == spec.required, input_name
        assert str(meta.get("default", "")) == spec.default, input_name
        if spec.boolean:
            assert meta["default"] in ("true", "false")
    assert tuple(action["outputs"]) == OUTPUTS[name]
    assert all(out["description"].strip() for out in action["outputs"].values())


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_no_expressions_in_descriptions(name: str) -> None:
    """Descriptions are plain text: act refuses '${{' there, and GitHub never evaluates it."""
    action = load_action(name)
    texts = [action["name"], action["description"],
             *(meta["description"] for meta in action["inputs"].values()),
             *(meta["description"] for meta in action["outputs"].values())]
    assert not [text for text in texts if "${{" in text]


def test_every_provenance_flag_is_an_input() -> None:
    flags = {f.flag.replace("-", "_") for f in FLAG_FIELDS if f.flag}
    assert set(PROVENANCE) == flags
    sign = {s.name for s in INPUTS["sign"]}
    verify = {s.name for s in INPUTS["verify"]}
    assert flags <= sign and flags <= verify


def test_input_names_follow_the_runner_rule() -> None:
    assert env_name("artifact_name") == "INPUT_ARTIFACT_NAME"
    assert env_name("num octocats") == "INPUT_NUM_OCTOCATS"
    assert env_name("eye-color") == "INPUT_EYE-COLOR", "hyphens are kept"


def test_read_inputs() -> None:
    specs = (Input("name", required=True), Input("flag", default="true", boolean=True),
             Input("note", default="n"))
    env = {"INPUT_NAME": "  x  ", "INPUT_FLAG": "False", "INPUT_NOTE": ""}
    assert read_inputs(env, specs) == {"name": "x", "flag": False, "note": "n"}
    with pytest.raises(UsageError, match="'name' is required"):
        read_inputs({"INPUT_NAME": "   "}, specs)
    for value in ("yes", "1", "on", "tRue"):
        with pytest.raises(UsageError, match="not a boolean"):
            parse_boolean("flag", value)


def test_workflow_commands_are_escaped() -> None:
    assert command("error", "a%b\r\nc", title="x: y, z") == "::error title=x%3A y%2C z::a%25b%0D%0Ac"
    assert command("add-mask", "s") == "::add-mask::s"


def test_outputs_use_a_random_delimiter() -> None:
    first, second = output_record("a", "1\n2"), output_record("a", "1\n2")
    assert first != second
    assert parse_outputs(first) == {"a": "1\n2"}
    with pytest.raises(ValueError, match="delimiter"):
        output_record("a", "x\nD\ny", delimiter="D")


def test_mask_every_line_of_a_secret(tmp_path: Path) -> None:
    out = io.StringIO()
    runner = Runner({}, out)
    runner.mask("line one\nline two")
    runner.mask("line one")
    assert out.getvalue().splitlines() == [
        "::add-mask::line one%0Aline two", "::add-mask::line one", "::add-mask::line two"]


def test_outside_a_runner_outputs_warn(tmp_path: Path) -> None:
    out = io.StringIO()
    Runner({}, out).set_output("x", "1")
    assert out.getvalue().startswith("::warning title=not run by a GitHub runner::")
    summary = tmp_path / "summary.md"
    Runner({"GITHUB_STEP_SUMMARY": str(summary)}, out).add_summary("x" * 600_000)
    assert summary.stat().st_size < 530_000, "summaries are cut well below GitHub's 1 MiB"


def test_fork_detection(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"pull_request": {"head": {"repo": {"full_name": "m/app", "fork": true}},'
                     ' "base": {"repo": {"full_name": "acme/app"}}}}')
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert Runner(env).fork_pull_request() == "m/app"
    assert Runner({**env, "GITHUB_EVENT_NAME": "push"}).fork_pull_request() is None
    event.write_text('{"pull_request": {"head": {"repo": {"full_name": "acme/app"}},'
                     ' "base": {"repo": {"full_name": "acme/app"}}}}')
    assert Runner(env).fork_pull_request() is None


def test_runner_provenance() -> None:
    env = {"GITHUB_SERVER_URL": "https://ghe.example.com/", "GITHUB_REPOSITORY": "acme/app",
           "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": "abc", "GITHUB_WORKFLOW": "ci",
           "GITHUB_WORKFLOW_SHA": "def", "RUNNER_ENVIRONMENT": "self-hosted"}
    assert runner_provenance(env) == {
        "source_repository": "https://ghe.example.com/acme/app",
        "source_repository_owner": "https://ghe.example.com/acme",
        "source_repository_ref": "refs/heads/main", "source_repository_digest": "abc",
        "build_config_digest": "def", "build_config_name": "ci",
        "runner_environment": "self-hosted"}
    assert runner_provenance({}) == {}


def test_cli_flags_become_input_names() -> None:
    text = "--source-repository-ref 'x' contradicts; pass --name or --file; --unknown-flag"
    assert in_action_terms("sign", text) == (
        "input 'source_repository_ref' 'x' contradicts; pass input 'artifact_name' or "
        "input 'artifact_name'; --unknown-flag")
    assert "input 'trust_root'" in in_action_terms("verify", "needs --trust-root")
    assert in_action_terms("revoke", "needs --trust-root") == "needs --trust-root"
    assert in_action_terms("sign", "--name x, or run 'signer artifact push --name x'") == (
        "input 'artifact_name' x, or run 'signer artifact push --name x'"), "commands kept"


def test_step_rows() -> None:
    last = max(STEPS)
    failed = EntryResult.failed("e", StepFailed(last, "because"))
    assert (failed.failed_step, failed_step_name(failed)) == (last, STEPS[last])
    rows = step_rows(failed, revocation_checked=True)
    assert [r[1] for r in rows[:-1]] == ["✅ pass"] * (last - 1)
    assert rows[-1][1] == "❌ fail: `because`"
    first = step_rows(EntryResult.failed("e", StepFailed(1, "x")), True)
    assert first[0][1].startswith("❌") and all(r[1] == "— not reached" for r in first[1:])
    assert step_rows(EntryResult("e", error="something else"), True) == [
        ("error", "❌ fail: `something else`")]


def test_an_unexpected_error_is_one_annotation_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signer import action, operations

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(operations, "sign", broken)
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    env = {"INPUT_ARTIFACT_NAME": f"ghcr.io/acme/app@sha256:{'a' * 64}", "INPUT_NAMESPACE": "n",
           "INPUT_API_URL": "http://127.0.0.1:9", "INPUT_ENABLE_GITHUB_ACTION_TOKEN": "false",
           "INPUT_API_KEY": "sgk_secret", "GITHUB_STEP_SUMMARY": str(summary)}
    out = io.StringIO()
    assert action.main(["sign"], env=env, stdout=out) == action.INTERNAL_ERROR_EXIT
    lines = out.getvalue().splitlines()
    assert lines[0] == "::add-mask::sgk_secret"
    errors = [line for line in lines if line.startswith("::error")]
    assert errors == [line for line in lines if not line.startswith(("::debug::", "::add-mask",
                                                                       "signing "))]
    assert len(errors) == 1 and "unexpected RuntimeError: boom" in errors[0]
    assert all(line.startswith("::") or line.startswith("signing ") for line in lines)
    assert any(line.startswith("::debug::Traceback") for line in lines)
    assert "This is a bug in signer" in summary.read_text()


def test_registry_access_masks_the_credentials_it_finds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ghcr.io with the job's token; a config.json copy named relative to the workspace;
    the inputs as SIGNER_REGISTRY_*; the process environment restored afterwards."""
    from signer.action import registry_access
    from signer.registry import ImageRef

    for name in ("SIGNER_REGISTRY_USERNAME", "SIGNER_REGISTRY_PASSWORD", "DOCKER_CONFIG",
                 "SIGNER_ALLOW_INSECURE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_jobtoken")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ghcr = ImageRef("ghcr.io", "acme/app", "a" * 64)
    none = {"registry_username": "", "registry_password": "", "allow_insecure_registry": False}
    out = io.StringIO()
    runner = Runner({"GITHUB_WORKSPACE": str(tmp_path)}, out)
    with registry_access.access(runner, none, ghcr) as source:
        assert source == "GITHUB_TOKEN"
    assert "::add-mask::ghs_jobtoken" in out.getvalue().splitlines()

    copy = tmp_path / "copy"
    copy.mkdir()
    auth = base64.b64encode(b"bot:s3cret").decode()
    (copy / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    out = io.StringIO()
    runner = Runner({"GITHUB_WORKSPACE": str(tmp_path), "DOCKER_CONFIG": "copy"}, out)
    with registry_access.access(runner, none, ghcr) as source:
        assert source == f"{copy}/config.json (auths.ghcr.io)"
        assert os.environ["DOCKER_CONFIG"] == str(copy)
    assert out.getvalue().splitlines() == ["::add-mask::s3cret", f"::add-mask::{auth}"]
    assert "DOCKER_CONFIG" not in os.environ, "restored"

    given = {**none, "registry_username": "u", "registry_password": "p",
             "allow_insecure_registry": True}
    with registry_access.access(Runner({}, io.StringIO()), given, ghcr) as source:
        assert source == "SIGNER_REGISTRY_USERNAME/PASSWORD"
        assert os.environ["SIGNER_ALLOW_INSECURE_REGISTRY"] == "true"
    assert "SIGNER_REGISTRY_PASSWORD" not in os.environ
    with pytest.raises(UsageError, match="'registry_password' was given without"):
        registry_access.environment(Runner({}), {**none, "registry_password": "p"})
