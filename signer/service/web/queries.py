"""What the search box means: a name prefix, a digest prefix, or a pasted reference.

The page's reads themselves are the store's (signer.service.store.page).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Search:
    name_prefix: str = ""
    name: str = ""
    digest_prefix: str = ""


def parse_search(text: str) -> Search:
    """A name prefix; or ``sha256:<hex…>``; or a pasted reference ``name@sha256:<hex…>``."""
    text = text.strip()
    name, at, digest = text.rpartition("@")
    if at and digest.startswith("sha256:"):
        return Search(name=name, digest_prefix=_hex(digest.removeprefix("sha256:")))
    if text.startswith("sha256:"):
        return Search(digest_prefix=_hex(text.removeprefix("sha256:")))
    return Search(name_prefix=text)


def _hex(text: str) -> str:
    """The leading hex digits of a digest as typed; anything else ends it."""
    digits = ""
    for char in text.lower()[:64]:
        if char not in "0123456789abcdef":
            break
        digits += char
    return digits
