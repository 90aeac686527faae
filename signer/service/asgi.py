"""The ASGI entry point: settings travel to each worker process through ``SIGNER_*``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from signer.service.app import create_app
from signer.service.config import OPTIONS, Settings
from signer.service.log import handoff
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
    runtime = load(settings_from_env())
    socket_path = os.environ.get(handoff.SOCKET_ENV)
    if socket_path:  # a worker of 'signer server start': its sequencer process appends
        runtime.service.hand_off_appends(handoff.Handoff(socket_path))
    return create_app(runtime)
