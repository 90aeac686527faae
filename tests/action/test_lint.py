"""Lint of the action's files, as CI runs it: check-jsonschema against the vendored SchemaStore
schemas, hadolint on the Dockerfile, zizmor (offline) on .github/, and the image's pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.action.conftest import ACTIONS, ROOT

SCHEMAS = ROOT / ".github" / "schemas"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", re.MULTILINE)


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.fail(f"{name} is missing: install the test extra (scripts/bootstrap)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_action_metadata_schema() -> None:
    done = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "github-action.json"),
               *map(str, ACTIONS.values()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_schema() -> None:
    assert {w.name for w in WORKFLOWS} >= {
        "ci.yml", "release.yml", "example-sign-on-release.yml", "example-verify-gate.yml",
        "example-revoke.yml"}
    done = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "github-workflow.json"),
               *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text("name: x\ndescription: y\nruns:\n  using: docker\n  args: [sign]\n")
    done = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "github-action.json"),
               str(broken))
    assert done.returncode != 0, "a docker action without 'image' must be refused"


def test_hadolint() -> None:
    done = run(tool("hadolint"), "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_offline() -> None:
    done = run(tool("zizmor"), "--offline", "--no-progress", ".github/",
               *(str(path.relative_to(ROOT)) for path in ACTIONS.values()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout + done.stderr


def test_the_release_signs_its_own_image_by_digest() -> None:
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert "id: push" in release and "steps.push.outputs.digest" in release
    assert "uses: ./\n" in release


def test_the_release_records_the_image_the_actions_run() -> None:
    """action-image.txt gets the pushed digest before the sign step, which so runs it, and
    the tags are pushed only after it signed."""
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    recorded = release.index('echo "${IMAGE}" > action-image.txt')
    assert "IMAGE: ${{ steps.image.outputs.artifact_name }}" in release
    assert "@${DIGEST}" in release and "DIGEST: ${{ steps.push.outputs.digest }}" in release
    assert recorded < release.index("uses: ./\n") < release.index("git -c http.extraheader")
    assert "action-image.txt" not in (ROOT / ".dockerignore").read_text(), \
        "excluded by '*': the release commit's tree builds the same image"


def test_a_branch_records_no_image() -> None:
    """Only a release commit (under its tags) has action-image.txt: a branch that had one
    would run an older image than its code."""
    assert not (ROOT / "action-image.txt").exists()


def pins(text: str) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2) for m in _PIN.finditer(text)}


def test_image_requirements_are_pinned_hashed_and_agree_with_constraints() -> None:
    text = (ROOT / "requirements" / "image.txt").read_text()
    image = pins(text)
    constraints = pins((ROOT / "requirements" / "constraints.txt").read_text())
    for name, version in image.items():
        if name != "setuptools":  # build-only, for the package itself
            assert constraints.get(name) == version, f"{name}: image {version}, constraints " \
                                                     f"{constraints.get(name)}"
    entries = [block for block in re.split(r"\n(?=[A-Za-z])", text) if _PIN.match(block)]
    assert len(entries) == len(image)
    unhashed = [e.split()[0] for e in entries if "--hash=sha256:" not in e]
    assert not unhashed, unhashed
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower().replace("_", "-")
               for dep in project["dependencies"]}
    assert runtime <= set(image), runtime - set(image)
    assert not {"fastapi", "uvicorn", "sqlalchemy", "psycopg"} & set(image), "client side only"
