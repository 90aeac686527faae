"""One table of service settings: the CLI's options, the workers' environment and the rate
limiter all read their defaults and names from :class:`Settings`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click
import pytest

from signer.cli import cli
from signer.errors import UsageError
from signer.service import asgi
from signer.service.config import DEFAULTS, OPTIONS, Settings
from signer.service.limits import RateLimiter

START = cli.commands["server"].commands["start"]  # type: ignore[attr-defined]
# A value for every setting that differs from its default.
CHANGED: dict[str, Any] = {
    "database_url": "postgresql://signer@db.internal/signer", "host": "0.0.0.0", "port": 9443,
    "public_url": "https://signer.example", "audience": "sigstore",
    "insecure_issuers": frozenset({"http://127.0.0.1:9000", "http://127.0.0.1:9001"}),
    "cert_validity_minutes": 10, "workers": 4, "log_level": "debug", "rate_limit": 2.5,
    "rate_burst": 7, "sigstore_audience": "fulcio", "audit_log": "/var/log/signer/audit.jsonl",
}


def start_params(args: list[str]) -> dict[str, Any]:
    """What ``signer server start ARGS`` parses, without starting anything."""
    return START.make_context("start", args).params


def test_every_setting_is_an_option_of_server_start() -> None:
    params = {p.name: p for p in START.params if isinstance(p, click.Option) and p.name != "help"}
    assert set(params) == set(OPTIONS) == {f.name for f in dataclasses.fields(Settings)}
    assert set(CHANGED) | {"data_dir"} == set(OPTIONS)
    for name, opt in OPTIONS.items():
        param = params[name]
        assert param.opts == [f"--{opt.flag}"]
        assert param.envvar == [opt.env, *opt.aliases]
        assert opt.env == "SIGNER_" + opt.flag.upper().replace("-", "_")
        if name in DEFAULTS:
            assert param.default == (() if opt.multiple else DEFAULTS[name]), name
        else:
            assert param.required, name


def test_the_cli_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    params = start_params(["--data-dir", str(tmp_path)])
    params["insecure_issuers"] = frozenset(params["insecure_issuers"])
    assert Settings(**params) == Settings(data_dir=tmp_path)


def test_the_cli_help_shows_the_settings_defaults() -> None:
    help_text = START.get_help(click.Context(START))
    for name in ("host", "port", "audience", "cert_validity_minutes", "workers", "rate_limit",
                 "rate_burst"):
        assert f"{OPTIONS[name].env}; default: {DEFAULTS[name]}" in " ".join(help_text.split())


def test_the_workers_read_back_what_start_exports(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for opt in OPTIONS.values():
        for name in opt.envs:
            monkeypatch.delenv(name, raising=False)
    changed = Settings(data_dir=tmp_path, **CHANGED)
    asgi.export_settings(changed)
    assert asgi.settings_from_env() == changed
    asgi.export_settings(Settings(data_dir=tmp_path))
    assert asgi.settings_from_env() == Settings(data_dir=tmp_path)


def test_unset_and_empty_variables_keep_the_settings_defaults(tmp_path: Path) -> None:
    assert Settings.from_env({"SIGNER_DATA_DIR": str(tmp_path)}) == Settings(data_dir=tmp_path)
    empty = {opt.env: "" for opt in OPTIONS.values()}
    assert Settings.from_env({**empty, "SIGNER_DATA_DIR": str(tmp_path)}) \
        == Settings(data_dir=tmp_path)


def test_the_cli_and_the_workers_agree_on_every_variable(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    changed = Settings(data_dir=tmp_path, **CHANGED)
    for name, value in changed.env().items():
        monkeypatch.setenv(name, value)
    params = start_params([])
    params["insecure_issuers"] = frozenset(",".join(params["insecure_issuers"]).split(","))
    assert Settings(**params) == changed


def test_the_rate_limiter_is_built_from_the_settings(tmp_path: Path) -> None:
    default = RateLimiter.from_settings(Settings(data_dir=tmp_path))
    assert (default.rate, default.burst) == (DEFAULTS["rate_limit"], DEFAULTS["rate_burst"])
    assert default.enabled
    env = {"SIGNER_DATA_DIR": str(tmp_path), "SIGNER_RATE_LIMIT": "0", "SIGNER_RATE_BURST": "3"}
    off = RateLimiter.from_settings(Settings.from_env(env))
    assert not off.enabled and off.burst == 3


@pytest.mark.parametrize("name", ["SIGNER_INSECURE_ISSUER", "SIGNER_INSECURE_ISSUERS"])
def test_the_insecure_issuer_variable_and_its_old_name(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNER_INSECURE_ISSUER", raising=False)
    monkeypatch.delenv("SIGNER_INSECURE_ISSUERS", raising=False)
    issuers = frozenset({"http://127.0.0.1:9000", "http://127.0.0.1:9001/realm"})
    monkeypatch.setenv(name, ",".join(sorted(issuers)))
    # The workers' reader, and the CLI (whose value start then exports under the new name).
    assert Settings.from_env({"SIGNER_DATA_DIR": str(tmp_path), name: ",".join(issuers)}
                             ).insecure_issuers == issuers
    params = start_params(["--data-dir", str(tmp_path)])
    assert frozenset(",".join(params["insecure_issuers"]).split(",")) == issuers
    asgi.export_settings(Settings(data_dir=tmp_path, insecure_issuers=issuers))
    assert "SIGNER_INSECURE_ISSUERS" not in os.environ  # one name for the workers
    assert asgi.settings_from_env().insecure_issuers == issuers


def test_the_new_insecure_issuer_name_wins_over_the_old(tmp_path: Path) -> None:
    env = {"SIGNER_DATA_DIR": str(tmp_path), "SIGNER_INSECURE_ISSUER": "http://new:1",
           "SIGNER_INSECURE_ISSUERS": "http://old:1"}
    assert Settings.from_env(env).insecure_issuers == {"http://new:1"}


@pytest.mark.parametrize(("name", "value"), [
    ("SIGNER_PORT", "eighty"), ("SIGNER_CERT_VALIDITY_MINUTES", "11"),
    ("SIGNER_CERT_VALIDITY_MINUTES", "0"), ("SIGNER_RATE_BURST", "0"),
    ("SIGNER_RATE_LIMIT", "-1"), ("SIGNER_WORKERS", "65"),
])
def test_a_bad_variable_is_refused_with_its_name(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as refused:
        Settings.from_env({"SIGNER_DATA_DIR": str(tmp_path), name: value})
    assert name in refused.value.detail and name in (refused.value.fix or "")


def test_no_data_dir_is_refused() -> None:
    with pytest.raises(UsageError, match="data directory"):
        Settings.from_env({})


def test_the_readme_lists_every_flag_and_variable() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Configuration (service)", 1)[1].split("\n\n", 3)[2]
    for opt in OPTIONS.values():
        assert f"`--{opt.flag}`" in table and all(f"`{e}`" in table for e in opt.envs), opt.flag
