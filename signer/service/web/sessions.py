"""Sign-in to the web page: server-side sessions bound to an API key, and CSRF tokens.

The browser holds only a random session token (cookie: HttpOnly, SameSite=Lax, Secure over
https); the database holds its SHA-256, the namespace, the API key's id, the session's CSRF
token and its expiry. Every request re-reads the API key, so a revoked key, or one that lost
its read permission, signs the browser out at once. The API key itself never reaches the
cookie.

CSRF: forms of a signed-in page carry the session's token (synchronizer token). The sign-in
form, before any session exists, uses a double-submit token: a random value in a
SameSite=Strict cookie that the form must repeat. Both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from signer.errors import AuthenticationError, PermissionDenied
from signer.service.auth import Authenticator
from signer.service.store import API_KEY_PREFIX, Store, now

# A working day: long enough not to interrupt a review, short enough that a forgotten
# browser does not stay signed in for long.
SESSION_LIFETIME = timedelta(hours=8)
SESSION_COOKIE = "signer_session"
SIGN_IN_CSRF_COOKIE = "signer_sign_in"
COOKIE_PATH = "/ui"
# What the page lets a key do is read: `verify` grants it, `admin` implies it.
READ_PERMISSIONS = frozenset({"verify", "admin"})
# An API key is ~60 characters; anything much longer is not one.
MAX_API_KEY_LENGTH = 256
TOKEN_BYTES = 32


@dataclass(frozen=True)
class WebSession:
    namespace: str
    key_name: str
    csrf_token: str
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; an absent or empty token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class Sessions:
    """The page's sign-ins, stored by the store, with the authenticator's checks."""

    def __init__(self, store: Store, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth

    def sign_in(self, api_key: str) -> tuple[str, WebSession]:
        """Check the key, store a new session; returns the cookie's token and the session."""
        api_key = api_key.strip()
        if not api_key.startswith(API_KEY_PREFIX + "_") or len(api_key) > MAX_API_KEY_LENGTH:
            raise AuthenticationError(
                "That is not an API key of this service.",
                f"Paste a key that starts with '{API_KEY_PREFIX}_', as 'signer api-key create' "
                "printed it.")
        principal = self.auth.authenticate("Bearer " + api_key)
        key = principal.api_key
        assert key is not None  # an API-key token authenticates as an API-key principal
        if key.namespace is None:
            raise PermissionDenied(
                "The server admin key belongs to no namespace, and the page shows one "
                "namespace at a time.",
                "Sign in with a namespace's API key that has the 'verify' or 'admin' "
                "permission ('signer api-key create --permissions verify').")
        if not self.auth.permissions(principal, key.namespace) & READ_PERMISSIONS:
            raise PermissionDenied(
                f"The key '{key.name}' may not read namespace '{key.namespace}': it has "
                f"{', '.join(sorted(key.permissions))} only.",
                "Sign in with a key that has the 'verify' or 'admin' permission.")
        token, created = new_token(), now()
        session = WebSession(key.namespace, key.name, new_token(), created + SESSION_LIFETIME)
        self.store.add_web_session(_hash(token), session.namespace, key.id,
                                   session.csrf_token, created, session.expires_at)
        return token, session

    def current(self, token: str | None) -> WebSession | None:
        """The live session for a cookie token, or None (unknown, expired, key revoked)."""
        if not token or len(token) > MAX_API_KEY_LENGTH:
            return None
        row = self.store.web_session(_hash(token))
        if row is None or row.expires_at <= now() or row.key_revoked_at is not None:
            return None
        if row.key_namespace != row.namespace or not row.key_permissions & READ_PERMISSIONS:
            return None
        return WebSession(row.namespace, row.key_name, row.csrf_token, row.expires_at)

    def sign_out(self, token: str | None) -> None:
        if not token:
            return
        self.store.remove_web_session(_hash(token))
