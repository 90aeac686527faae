"""The ASGI entry point: settings travel to each worker process through ``SIGNER_*``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from signer.service.app import create_app
from signer.service.config import OPTIONS, Settings
from signer.service.runtime import load


def export_settings(settings: Settings) -> None:
    """Put the settings where every worker's :func:`create` finds them."""
    for opt in OPTIONS.values():
        for alias in opt.aliases:  # already read; the one name below now says it all
            os.environ.pop(alias, None)
    os.environ.update(settings.env())


def settings_from_env() -> Settings:
    return Settings.from_env(os.environ)


def create() -> FastAPI:
    return create_app(load(settings_from_env()))
