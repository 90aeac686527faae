"""The web page, CI/CD > Artifacts: server-rendered HTML under /ui (docs/web.md).

``app.include_router(web.router())`` serves the pages; ``web.static_files()`` mounted at
``web.STATIC_PATH`` serves the one stylesheet and the optional local-time script.
"""

from __future__ import annotations

from starlette.staticfiles import StaticFiles

from signer.service.web.pages import STATIC, STATIC_PATH
from signer.service.web.routes import router

__all__ = ["STATIC_PATH", "router", "static_files"]


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
