"""Service configuration: flags and ``SIGNER_*`` environment variables, and the data layout."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from signer.service.ca import CERT_VALIDITY

PASSPHRASE_ENV = "SIGNER_CA_PASSPHRASE"


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


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    audience: str = "signer"
    insecure_issuers: frozenset[str] = field(default_factory=frozenset)
    cert_validity: timedelta = CERT_VALIDITY

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


def passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None
