"""What the GitHub runner hands a container action, and how the action answers it.

The runner passes each input as ``INPUT_<NAME>`` (the input's name upper-cased, spaces turned
into ``_``, hyphens kept), with the defaults of ``action.yml`` already merged; it checks
neither ``required`` nor booleans, so :func:`read_inputs` does. Answers go back as workflow
commands on stdout (``::add-mask::``, ``::error::`` …) and as lines appended to the files the
runner names in ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY``.

Everything here is a plain function of an environment mapping and a stream, so it is tested
without a runner; :class:`Runner` only bundles the two.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from signer.errors import UsageError

# YAML 1.2 core schema booleans, as @actions/core's getBooleanInput accepts them.
TRUE_VALUES = frozenset({"true", "True", "TRUE"})
FALSE_VALUES = frozenset({"false", "False", "FALSE"})
# GitHub caps one step's summary at 1 MiB; stay well below so the summary is never dropped.
SUMMARY_LIMIT_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Input:
    """One input of an action.yml: the action's own copy, checked against the file in tests."""

    name: str
    required: bool = False
    default: str = ""
    boolean: bool = False
    secret: bool = False
    example: str = "…"


def env_name(input_name: str) -> str:
    """The runner's rule: ``INPUT_`` + name with spaces → ``_``, upper-cased, hyphens kept."""
    return "INPUT_" + input_name.replace(" ", "_").upper()


def raw_input(env: Mapping[str, str], spec: Input) -> str:
    """The input as given (trimmed, as @actions/core does), else its default."""
    value = env.get(env_name(spec.name), "").strip()
    return value if value else spec.default


def read_inputs(env: Mapping[str, str], specs: Sequence[Input]) -> dict[str, Any]:
    """Every declared input: strings, ``bool`` for booleans; required ones must be set."""
    values: dict[str, Any] = {}
    for spec in specs:
        value = raw_input(env, spec)
        if spec.required and not value:
            raise UsageError(
                f"The input '{spec.name}' is required but was not given.",
                f"Add '{spec.name}: {spec.example}' under 'with:' of this step.",
            )
        if spec.boolean:
            values[spec.name] = parse_boolean(spec.name, value)
        else:
            values[spec.name] = value
    return values


def parse_boolean(name: str, value: str) -> bool:
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise UsageError(f"The input '{name}' is '{value}', which is not a boolean.",
                     f"Set '{name}: true' or '{name}: false'.")


# -- workflow commands ------------------------------------------------------------------------
def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> str:
    """One workflow command, ``::name key=value,…::message``, escaped as the runner reads it."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items() if v)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


# -- environment files ------------------------------------------------------------------------
def output_record(name: str, value: str, delimiter: str | None = None) -> str:
    """``name<<DELIMITER`` / value / ``DELIMITER``: safe for any value, multi-line included."""
    delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in name or delimiter in value:
        raise ValueError("the output delimiter occurs in the output")
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


class Runner:
    """The runner as this process sees it: its environment, and stdout for commands."""

    def __init__(self, env: Mapping[str, str] | None = None, stdout: TextIO | None = None
                 ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.stdout = stdout or sys.stdout
        self._masked: set[str] = set()

    # -- commands -----------------------------------------------------------------------------
    def log(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def issue(self, name: str, message: str, **properties: str) -> None:
        print(command(name, message, **properties), file=self.stdout, flush=True)

    def mask(self, secret: str) -> None:
        """Ask the runner to hide ``secret`` in every log line, each line of it included."""
        for line in [secret, *secret.splitlines()]:
            value = line.strip()
            if value and value not in self._masked:
                self._masked.add(value)
                self.issue("add-mask", value)

    def error(self, message: str, title: str = "") -> None:
        self.issue("error", message, title=title)

    def warning(self, message: str, title: str = "") -> None:
        self.issue("warning", message, title=title)

    def notice(self, message: str, title: str = "") -> None:
        self.issue("notice", message, title=title)

    def debug(self, message: str) -> None:
        self.issue("debug", message)

    # -- files --------------------------------------------------------------------------------
    def set_output(self, name: str, value: str) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            self.warning(f"GITHUB_OUTPUT is not set: output '{name}' is not recorded.",
                         title="not run by a GitHub runner")
            return
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(output_record(name, value))

    def add_summary(self, markdown: str) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path:
            return
        data = markdown.rstrip("\n") + "\n\n"  # a blank line: the next part is a new block
        if len(data.encode()) > SUMMARY_LIMIT_BYTES:
            data = data.encode()[:SUMMARY_LIMIT_BYTES].decode(errors="ignore") \
                + "\n\n… (summary cut at 512 KiB)\n"
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(data)

    # -- context ------------------------------------------------------------------------------
    @property
    def workspace(self) -> Path:
        return Path(self.env.get("GITHUB_WORKSPACE") or ".")

    def event(self) -> dict[str, Any]:
        """The webhook payload that started the run (``GITHUB_EVENT_PATH``), or ``{}``."""
        path = self.env.get("GITHUB_EVENT_PATH")
        if not path:
            return {}
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def fork_pull_request(self) -> str | None:
        """``owner/repo`` of the fork when this run is for a pull request from a fork."""
        if not self.env.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
            return None
        pull = self.event().get("pull_request") or {}
        head = (pull.get("head") or {}).get("repo") or {}
        base = (pull.get("base") or {}).get("repo") or {}
        head_name, base_name = head.get("full_name"), base.get("full_name")
        if head.get("fork") or (head_name and base_name and head_name != base_name):
            return str(head_name or "a fork")
        return None
