"""Rendering: the Jinja environment, its filters, and the headers every page carries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
STATIC_PATH = "/ui/static"

# Pages load only their own stylesheet and script; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

SOURCE_TITLES = {
    "token": "from the verified OIDC token",
    "declared": "declared by the API-key holder, not proven by a token",
    "service": "set by this service",
}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_TIME = Markup('<time datetime="%s" title="%s">%s</time>')
_TIME_SECONDS = Markup('<time datetime="%s" title="%s" data-seconds="1">%s</time>')


def when(value: datetime | None, seconds: bool = False) -> Markup:
    """A <time> element: UTC text readable without JavaScript, ISO in datetime and title."""
    if value is None:
        return Markup('<span class="unset">—</span>')
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"
    stamp = iso(value)
    # Markup's % escapes its arguments (and is far cheaper than .format, 100 times a page).
    return (_TIME_SECONDS if seconds else _TIME) % (stamp, stamp, text)


def static(name: str) -> str:
    return f"{STATIC_PATH}/{name}"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["iso"] = iso
    env.globals["static"] = static
    env.globals["source_titles"] = SOURCE_TITLES
    return env


_ENV = environment()


def render(template: str, context: dict[str, Any], status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    body = _ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code,
                        headers={**SECURITY_HEADERS, **(headers or {})})
