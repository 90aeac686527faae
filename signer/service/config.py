"""Service configuration, and the data layout.

:class:`Settings` is the one table of what an operator sets: each field holds its default
and, in its :class:`Option`, its ``--flag`` on ``signer server start`` and its ``SIGNER_<FLAG>``
variable. The CLI builds its options from it, ``signer server start`` hands the settings to
each worker as those variables (:meth:`Settings.env`), and the worker reads them back
(:meth:`Settings.from_env`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from signer.errors import UsageError
from signer.oidc import DEFAULT_AUDIENCE
from signer.service.ca import CERT_VALIDITY, MAX_CERT_VALIDITY

PASSPHRASE_ENV = "SIGNER_CA_PASSPHRASE"
SIGSTORE_AUDIENCE = "sigstore"  # the audience sigstore-python, cosign and sigstore-js request
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Layout:
    """Where things live under the data directory."""

    data_dir: Path

    @property
    def keys(self) -> Path:
        return self.data_dir / "keys"

    def key(self, name: str) -> Path:
        return self.keys / f"{name}.key"

    def certificate(self, name: str) -> Path:
        return self.keys / f"{name}.pem"


def issuer_set(text: str) -> frozenset[str]:
    """Issuer URLs separated by commas or spaces (a repeated flag, or one variable)."""
    return frozenset(i for i in re.split(r"[\s,]+", text) if i)


@dataclass(frozen=True)
class Option:
    """How an operator gives one setting: ``--flag`` and the variable ``SIGNER_<FLAG>``."""

    flag: str
    help: str
    parse: Callable[[str], Any] = str
    bounds: tuple[int, int | None] | None = None  # inclusive; None above: no maximum
    shown_default: str | None = None  # the help's [default: …] when the value is computed
    multiple: bool = False  # the flag repeats; the variable is comma-separated
    aliases: tuple[str, ...] = ()  # older variable names, still read

    @property
    def env(self) -> str:
        return "SIGNER_" + self.flag.upper().replace("-", "_")

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.env, *self.aliases)


def setting(default: Any, option: Option) -> Any:
    return dataclasses.field(default=default, metadata={"option": option})


@dataclass(frozen=True)
class Settings:
    """What an operator sets: each field's default, and its :class:`Option`."""

    data_dir: Path = dataclasses.field(metadata={"option": Option(
        "data-dir", "Keys, certificates and the SQLite database.", Path)})
    database_url: str | None = setting(None, Option(
        "database-url", "postgresql://… for replicas.", shown_default="SQLite in data-dir"))
    host: str = setting("127.0.0.1", Option("host", "Address to listen on."))
    port: int = setting(8080, Option("port", "Port to listen on.", int))
    public_url: str | None = setting(None, Option(
        "public-url", "The URL clients use; API keys' issuer is <public-url>/auth.",
        shown_default="http://HOST:PORT"))
    audience: str = setting(DEFAULT_AUDIENCE, Option(
        "audience", "Required 'aud' of OIDC tokens."))
    sigstore_audience: str = setting(SIGSTORE_AUDIENCE, Option(
        "sigstore-audience", "Required 'aud' of OIDC tokens at the Sigstore APIs "
        "(/api/v2/signingCert): what Sigstore's clients request."))
    insecure_issuers: frozenset[str] = setting(frozenset(), Option(
        "insecure-issuer", "Allow this plain-http OIDC issuer (tests only; prefer 'signer issuer "
        "add --allow-http'); repeat the flag, or comma-separate.", issuer_set, multiple=True,
        aliases=("SIGNER_INSECURE_ISSUERS",)))
    cert_validity_minutes: int = setting(CERT_VALIDITY // MINUTE, Option(
        "cert-validity-minutes", "Lifetime of a signing certificate.", int,
        bounds=(1, MAX_CERT_VALIDITY // MINUTE)))
    workers: int = setting(1, Option("workers", "Worker processes.", int, bounds=(1, 64)))
    log_level: str = setting("info", Option("log-level", "uvicorn's log level."))
    audit_log: str | None = setting(None, Option(
        "audit-log", "Append one JSON line per decision (issued, stored, revoked, refused, "
        "admin change, key rotation) to this file; '-' for standard output.",
        shown_default="the service's log (stderr)"))
    # 25 signings a second per credential, sustained (a signing is two requests), and a
    # burst of 100 at once (an org-wide key shared by many parallel jobs): far above what CI
    # does, far below the service's capacity of thousands a second, so one credential
    # cannot starve the others.
    rate_limit: float = setting(50.0, Option(
        "rate-limit", "Requests a second per authenticated principal; 0 turns it off.", float,
        bounds=(0, None)))
    rate_burst: int = setting(200, Option(
        "rate-burst", "Requests a principal may send at once.", int, bounds=(1, None)))

    @property
    def layout(self) -> Layout:
        return Layout(self.data_dir)

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def service_issuer(self) -> str:
        """The certificate issuer recorded for API-key principals."""
        return f"{self.url}/auth"

    @property
    def cert_validity(self) -> timedelta:
        return self.cert_validity_minutes * MINUTE

    def env(self) -> dict[str, str]:
        """Every setting as its ``SIGNER_*`` variable; :meth:`from_env` reads them back."""
        return {opt.env: _text(getattr(self, name)) for name, opt in OPTIONS.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings the variables give; an unset or empty one keeps its default."""
        values: dict[str, Any] = {}
        for name, opt in OPTIONS.items():
            text = next((env[n] for n in opt.envs if env.get(n)), None)
            if text is None:
                continue
            try:
                value = opt.parse(text)
            except ValueError:
                value = None
            if value is None or (opt.bounds is not None and not _within(value, opt.bounds)):
                raise UsageError(f"{opt.env}={text!r} is not allowed.",
                                 f"Set {opt.env} to a number{_range(opt.bounds)}.")
            values[name] = value
        if "data_dir" not in values:
            raise UsageError("No data directory given.",
                             "Set SIGNER_DATA_DIR (or start with 'signer server start').")
        return cls(**values)


OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in dataclasses.fields(Settings)}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)
                            if f.default is not dataclasses.MISSING}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value)


def _within(value: float, bounds: tuple[int, int | None]) -> bool:
    low, high = bounds
    return low <= value and (high is None or value <= high)


def _range(bounds: tuple[int, int | None] | None) -> str:
    if bounds is None:
        return ""
    low, high = bounds
    return f", at least {low:g}" if high is None else f" from {low:g} to {high:g}"


def passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None
