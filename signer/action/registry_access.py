"""The image's registry as the action reaches it: credentials where signer.registry looks for
them, masked before anything is sent or printed.

The composite step passes what the container cannot see by itself (docs/action.md, "Registry
credentials"): a copy of the runner's Docker ``config.json`` as ``DOCKER_CONFIG``, relative to
the workspace, and the job's token as ``GITHUB_TOKEN``. ``registry_username`` and
``registry_password`` become ``SIGNER_REGISTRY_USERNAME``/``…_PASSWORD``, as for the CLI.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from signer.action.runner import Runner
from signer.errors import UsageError
from signer.registry import ImageRef
from signer.registry import credentials as creds
from signer.registry.reference import INSECURE_ENV


def environment(runner: Runner, inputs: Mapping[str, Any]) -> dict[str, str]:
    """The variables signer.registry reads, from the inputs and the composite step's env."""
    user, password = inputs["registry_username"], inputs["registry_password"]
    if bool(user) != bool(password):
        given, missing = ("registry_username", "registry_password") if user else (
            "registry_password", "registry_username")
        raise UsageError(f"The input '{given}' was given without '{missing}'.",
                         "Pass both (the password from a secret), or neither to use Docker's "
                         "config.json (docker/login-action) or, for ghcr.io, the job's token.")
    env = {"SIGNER_REGISTRY_USERNAME": user, "SIGNER_REGISTRY_PASSWORD": password,
           INSECURE_ENV: "true" if inputs["allow_insecure_registry"] else ""}
    config = runner.env.get("DOCKER_CONFIG", "")
    if config and not Path(config).is_absolute():  # the copy, relative to the workspace
        env["DOCKER_CONFIG"] = str(runner.workspace / config)
    return {name: value for name, value in env.items() if value}


@contextmanager
def access(runner: Runner, inputs: Mapping[str, Any], image: ImageRef) -> Iterator[str]:
    """The process environment set for the registry (restored after); yields where the
    credentials come from (safe to show), after masking them."""
    env = environment(runner, inputs)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        found = creds.lookup(image.registry)
        if found is not None:
            for secret in (found.password, found.identity_token,
                           _basic(found.username, found.password)):
                if secret:
                    runner.mask(secret)
        yield found.source if found is not None else "none (anonymous)"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _basic(username: str, password: str) -> str:
    """The base64 ``user:password`` of config.json's ``auth`` and of a Basic header."""
    return base64.b64encode(f"{username}:{password}".encode()).decode() if password else ""
