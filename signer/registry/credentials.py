"""Registry credentials where the ecosystem keeps them; never printed, logged or raised.

Order: ``SIGNER_REGISTRY_USERNAME``/``SIGNER_REGISTRY_PASSWORD`` (given explicitly, e.g. by
the action), then Docker's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``): a
``credHelpers`` entry for the registry, an ``auths`` entry (``auth`` = base64 user:pass, or
an ``identitytoken``), the ``credsStore``; then ``GITHUB_TOKEN`` for ghcr.io. None: anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signer.errors import UsageError

GHCR = "ghcr.io"
HELPER_TIMEOUT = 30  # seconds; a helper may unlock a keychain
# Docker Hub's entry in config.json is the v1 index URL, for historical reasons.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
             "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A user and a secret, or an OAuth2 refresh token (``identitytoken``) for the realm."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = ""  # where they came from, safe to show


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def lookup(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    env = os.environ if env is None else env
    user, password = env.get("SIGNER_REGISTRY_USERNAME"), env.get("SIGNER_REGISTRY_PASSWORD")
    if user and password:
        return Credentials(user, password, source="SIGNER_REGISTRY_USERNAME/PASSWORD")
    found = _from_docker_config(registry, docker_config_path(env))
    if found is not None:
        return found
    token = env.get("GITHUB_TOKEN")
    if registry == GHCR and token:
        return Credentials("x-access-token", token, source="GITHUB_TOKEN")
    return None


def _keys(registry: str) -> tuple[str, ...]:
    if registry in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        return _HUB_KEYS
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/",
            f"https://{registry}/v2/")


def _from_docker_config(registry: str, path: Path) -> Credentials | None:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"Docker's config file {path} cannot be read as JSON "
                         f"({type(exc).__name__}).",
                         "Fix or remove it, or run 'docker login REGISTRY' again.") from None
    if not isinstance(config, dict):
        return None
    keys = _keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return _from_helper(helpers[key], key, path)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict):
            found = _from_auth_entry(entry, key, path)
            if found is not None:
                return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        for key in keys[:2]:
            found = _from_helper(store, key, path, required=False)
            if found is not None:
                return found
    return None


def _from_auth_entry(entry: dict[str, Any], key: str, path: Path) -> Credentials | None:
    source = f"{path} (auths.{key})"
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        return Credentials(str(entry.get("username") or ""), identity_token=entry["identitytoken"],
                           source=source)
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep, user, password = "", "", ""
        if not sep:
            raise UsageError(f"The 'auth' of {key} in {path} is not base64 of user:password.",
                             f"Run 'docker login {key}' again.")
        return Credentials(user, password, source=source)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"], source=source)
    return None


def _from_helper(name: str, registry: str, path: Path, required: bool = True
                 ) -> Credentials | None:
    program = f"docker-credential-{name}"
    source = f"{program} (named in {path})"
    if shutil.which(program) is None:
        raise UsageError(f"{path} names the credential helper '{name}' for {registry}, but "
                         f"{program} is not on PATH.",
                         f"Install {program}, or remove the helper from {path}.")
    try:
        # The helper Docker itself would run: named by the user's own config file.
        done = subprocess.run([program, "get"], input=registry, capture_output=True, text=True,  # noqa: S603
                              timeout=HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"The credential helper {program} did not answer "
                         f"({type(exc).__name__}).", "Run it by hand to see why.") from None
    if done.returncode != 0:
        # The helper protocol says "credentials not found in native keychain" on stdout.
        if not required or "not found" in (done.stdout + done.stderr).lower():
            return None
        raise UsageError(f"The credential helper {program} failed for {registry} "
                         f"(exit {done.returncode}).",
                         f"Run 'echo {registry} | {program} get' to see why.")
    try:
        answer = json.loads(done.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"The credential helper {program} answered something that is not "
                         "{\"Username\", \"Secret\"} JSON.", "Check the helper.") from None
    if user == "<token>":  # the helper protocol's marker of an identity token
        return Credentials("", identity_token=secret, source=source)
    return Credentials(user, secret, source=source)
