"""The ASGI entry point: settings travel to each worker process through ``SIGNER_*``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from signer.service.app import create_app
from signer.service.config import Settings
from signer.service.runtime import load


def export_settings(*, data_dir: Path, database_url: str | None, host: str, port: int,
                    public_url: str | None, audience: str, insecure_issuers: list[str],
                    cert_validity_minutes: int) -> None:
    values = {
        "SIGNER_DATA_DIR": str(data_dir.resolve()), "SIGNER_DATABASE_URL": database_url or "",
        "SIGNER_HOST": host, "SIGNER_PORT": str(port), "SIGNER_PUBLIC_URL": public_url or "",
        "SIGNER_AUDIENCE": audience, "SIGNER_INSECURE_ISSUERS": ",".join(insecure_issuers),
        "SIGNER_CERT_VALIDITY_MINUTES": str(cert_validity_minutes),
    }
    os.environ.update(values)


def settings_from_env() -> Settings:
    env = os.environ
    return Settings(
        data_dir=Path(env["SIGNER_DATA_DIR"]),
        database_url=env.get("SIGNER_DATABASE_URL") or None,
        host=env.get("SIGNER_HOST", "127.0.0.1"),
        port=int(env.get("SIGNER_PORT", "8080")),
        public_url=env.get("SIGNER_PUBLIC_URL") or None,
        audience=env.get("SIGNER_AUDIENCE", "signer"),
        insecure_issuers=frozenset(i for i in env.get("SIGNER_INSECURE_ISSUERS", "").split(",")
                                   if i),
        cert_validity=timedelta(minutes=int(env.get("SIGNER_CERT_VALIDITY_MINUTES", "5"))),
    )


def create() -> FastAPI:
    return create_app(load(settings_from_env()))
