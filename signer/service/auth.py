"""Who is calling, and what may they do: OIDC tokens, API keys, namespace policies.

Nothing is allowed by default. A token's issuer must be named by some namespace's policy
before its keys are even fetched; its claims must then match a policy of the namespace the
request is for. API keys belong to one namespace (or, for the server admin key, to none).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import jwt
import requests
from cryptography import x509

from signer import issuers
from signer.errors import AuthenticationError, PermissionDenied, TooLarge, Unavailable, UsageError
from signer.issuers import Issuer
from signer.provenance import Provenance
from signer.service.store import API_KEY_PREFIX, ApiKey, Policy, Store
from signer.verification import uploads

PERMISSIONS = frozenset({"sign", "verify", "revoke", "admin"})
# GitHub's tokens are ~1–2 KB; anything past this is not a token we accept.
MAX_TOKEN_BYTES = 16 * 1024
CLOCK_SKEW_SECONDS = 60
# Asymmetric algorithms only: 'none' and HMAC (key confusion) are never accepted.
TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
JWKS_LIFETIME_SECONDS = 300
ISSUER_TIMEOUT_SECONDS = 5
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]
POLICY_CACHE_SECONDS = 2.0
ISSUER_CACHE_SECONDS = 2.0  # declared issuers: like policies, a change applies within this


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, before any namespace is considered."""

    kind: str  # "oidc" or "apikey"
    identity: str
    issuer: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    api_key: ApiKey | None = None
    # A token's issuer, resolved once (its kind decides the provenance); None for API keys.
    oidc_issuer: Issuer | None = None
    # kind "leaf": the holder of a leaf this service issued for this namespace, who proved
    # possession of its key by signing with it (Rekor's unauthenticated writes).
    leaf_namespace: str | None = None

    @property
    def is_server_admin(self) -> bool:
        return (self.api_key is not None and self.api_key.namespace is None
                and "admin" in self.api_key.permissions)


def parse_permissions(values: str | list[str]) -> frozenset[str]:
    items = values.split(",") if isinstance(values, str) else values
    perms = frozenset(p.strip() for p in items if p.strip())
    unknown = perms - PERMISSIONS
    if unknown or not perms:
        raise UsageError(
            f"Unknown or missing permissions: {', '.join(sorted(unknown)) or '(none)'}.",
            f"Use a comma-separated subset of {', '.join(sorted(PERMISSIONS))}.",
        )
    return perms


def check_policy(issuer: Issuer, claims: Mapping[str, str]) -> None:
    """A policy names an issuer URL and claims a token can carry: as in a token's text
    claims, neither may hold control characters (no token could match, and both are stored)."""
    texts = {"issuer": issuer.url} | {f"claim {k[:64]!r}": k + v for k, v in claims.items()}
    for name, text in texts.items():
        if not text.isprintable():
            raise UsageError(f"The policy's {name} holds control characters.",
                             "Give the issuer and the claims as the tokens spell them.")
    issuers.check_url(issuer.url, issuer.allow_http)


class IssuerKeys:
    """Discovery → jwks_uri → keys, per issuer, cached; refreshed on an unknown ``kid``."""

    def __init__(self, timeout: float = ISSUER_TIMEOUT_SECONDS) -> None:
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()
        self._timeout = timeout

    def _client(self, issuer: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(issuer)
        if client is not None:
            return client
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=self._timeout)
            response.raise_for_status()
            discovery = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise Unavailable(
                f"The OIDC issuer {issuer} did not serve its discovery document.",
                "Retry shortly; the issuer may be down.",
            ) from exc
        if discovery.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
            raise AuthenticationError(f"The issuer's discovery document names another issuer "
                                      f"({discovery.get('issuer')!r}).")
        client = jwt.PyJWKClient(
            discovery["jwks_uri"], cache_keys=False, lifespan=JWKS_LIFETIME_SECONDS,
            timeout=self._timeout,
        )
        with self._lock:
            self._clients[issuer] = client
        return client

    def signing_key(self, issuer: str, kid: Any) -> Any:
        client = self._client(issuer)
        try:
            return client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(
                f"The OIDC issuer's keys (JWKS) could not be fetched from {client.uri}.",
                "Retry shortly; the issuer may be down.",
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationError(
                f"The token's signing key is not published by {issuer}: {exc}.",
                "Request a fresh token from the issuer.",
            ) from exc


# Tokens verified recently, at most this many per process (the oldest go first).
VERIFIED_TOKENS = 4096


class VerifiedTokens:
    """Tokens whose signature and claims were verified, with their claims: the same token
    again (a job signing many artifacts; the two-step API's second request) skips PyJWT's
    parse and checks (its base64 validation alone is ~0.1 ms a token). Keyed by the whole
    token and the audience it was checked for; an entry lasts until the token expires, and no
    longer than the issuer's keys are cached (JWKS_LIFETIME_SECONDS), so a key the issuer
    withdraws stops counting as it would for a new token. The issuer's trust (policies,
    declared issuers) is checked again on every use."""

    def __init__(self, size: int = VERIFIED_TOKENS) -> None:
        self._size = size
        self._entries: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, audience: str) -> Mapping[str, Any] | None:
        found = self._entries.get((token, audience))
        if found is None or time.time() >= found[0]:
            return None
        return found[1]

    def put(self, token: str, audience: str, claims: Mapping[str, Any]) -> Mapping[str, Any]:
        """Remember ``claims`` (verified) for ``token``; returns them, read-only."""
        until = min(float(claims["exp"]) + CLOCK_SKEW_SECONDS,
                    time.time() + JWKS_LIFETIME_SECONDS)
        with self._lock:
            if len(self._entries) >= self._size:
                now = time.time()
                live = {k: v for k, v in self._entries.items() if v[0] > now}
                # dicts keep insertion order: past the bound, the older half goes.
                self._entries = live if len(live) < self._size else dict(
                    list(live.items())[self._size // 2:])
            # Read-only: every request with this token shares the one mapping.
            frozen = MappingProxyType(dict(claims))
            self._entries[(token, audience)] = (until, frozen)
        return frozen


class Authenticator:
    def __init__(self, store: Store, audience: str, insecure_issuers: frozenset[str],
                 service_issuer: str) -> None:
        self.store = store
        self.audience = audience
        self.insecure_issuers = frozenset(i.rstrip("/") for i in insecure_issuers)
        self.service_issuer = service_issuer
        self.keys = IssuerKeys()
        self.verified = VerifiedTokens()
        self._policies: list[Policy] = []
        self._policies_at = float("-inf")
        self._issuers: dict[str, Issuer] = {}
        self._issuers_at = float("-inf")

    # -- policies: cached; a change here applies at once, on other replicas within the TTL ----
    def policies(self) -> list[Policy]:
        if time.monotonic() - self._policies_at > POLICY_CACHE_SECONDS:
            self._policies = self.store.list_policies()
            self._policies_at = time.monotonic()
        return self._policies

    def invalidate_policies(self) -> None:
        self._policies_at = float("-inf")

    # -- issuers: declared ones cached like policies; the rest from signer.issuers' table ------
    def issuer(self, url: str) -> Issuer:
        """What an issuer URL is: declared, well-known or generic; http only where allowed."""
        if time.monotonic() - self._issuers_at > ISSUER_CACHE_SECONDS:
            self._issuers = {row.url: issuers.declare(row.url, row.kind, row.server_url,
                                                      row.allow_http)
                             for row in self.store.list_issuers()}
            self._issuers_at = time.monotonic()
        return issuers.resolve(url, self._issuers, self.insecure_issuers)

    def invalidate_issuers(self) -> None:
        self._issuers_at = float("-inf")

    # -- authentication -----------------------------------------------------------------------
    def authenticate(self, authorization: str | None, audience: str | None = None
                     ) -> Principal:
        """The caller; an OIDC token must be for ``audience`` (default: the service's)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError(
                "No credentials: the request has no 'Authorization: Bearer …' header.",
                "Pass an API key (--api-key / SIGNER_API_KEY) or a GitHub Actions OIDC token "
                "(--enable-github-action-token).",
            )
        token = authorization[7:].strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise TooLarge(f"The bearer token is {len(token)} bytes; the limit is "
                           f"{MAX_TOKEN_BYTES}.", "Send the token as the issuer minted it.")
        if token.startswith(API_KEY_PREFIX + "_"):
            return self._api_key(token)
        return self._oidc(token, audience or self.audience)

    def _api_key(self, token: str) -> Principal:
        key = self.store.check_api_key(token)
        if key is None:
            raise AuthenticationError(
                "The API key is unknown or revoked.",
                "Ask a namespace admin for a new key ('signer api-key create').",
            )
        return Principal("apikey", f"apikey:{key.namespace or '*'}/{key.name}",
                         self.service_issuer, api_key=key)

    def _oidc(self, token: str, audience: str) -> Principal:
        claims = self.verified.get(token, audience)
        if claims is None:
            verified, resolved = self._verify(token, audience)
            claims = self.verified.put(token, audience, verified)
        else:  # verified before: the issuer's trust may have changed since
            resolved = self._trusted_issuer(claims["iss"])
        return Principal("oidc", _checked_subject(claims), claims["iss"],
                         claims=claims, oidc_issuer=resolved)

    def _trusted_issuer(self, issuer: Any) -> Issuer:
        if not isinstance(issuer, str) or not any(p.issuer == issuer for p in self.policies()):
            raise AuthenticationError(
                f"The token's issuer {issuer!r} is not trusted by any namespace policy.",
                "A namespace admin must add a policy for this issuer ('signer policy add').",
            )
        resolved = self.issuer(issuer)
        issuers.check_url(resolved.url, resolved.allow_http)
        return resolved

    def _verify(self, token: str, audience: str) -> tuple[Mapping[str, Any], Issuer]:
        """The token's checked claims (signature, audience, times, required claims) and its
        trusted issuer, checked before its keys are fetched."""
        try:
            # One parse for the header and the claims the checks below need before the
            # signature is verified (PyJWT's helpers would each parse the token again).
            parsed = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = parsed["header"], parsed["payload"]
        except jwt.PyJWTError as exc:
            raise AuthenticationError(
                f"The bearer token is neither an API key nor a well-formed JWT ({exc}).",
                "Pass the OIDC token exactly as the issuer returned it.",
            ) from exc
        algorithm = header.get("alg")
        if algorithm not in TOKEN_ALGORITHMS:
            raise AuthenticationError(
                f"The token is signed with '{algorithm}'; only asymmetric signatures "
                f"({', '.join(TOKEN_ALGORITHMS)}) are accepted.",
                "Use the token your CI's OIDC issuer minted, unmodified.",
            )
        issuer = unverified.get("iss")
        resolved = self._trusted_issuer(issuer)
        key = self.keys.signing_key(issuer, header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=audience, issuer=issuer,
                leeway=CLOCK_SKEW_SECONDS, options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("The OIDC token has expired.",
                                      "Request a fresh token just before signing.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("The OIDC token is not valid yet (nbf/iat in the future).",
                                      "Check the clock of the machine that minted it.") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError(
                f"The OIDC token's audience is {unverified.get('aud')!r}, not "
                f"'{audience}'.",
                f"Request the token with audience '{audience}' (--audience).",
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"The OIDC token lacks the '{exc.claim}' claim.",
                                      "Use a token minted by the CI's OIDC issuer.") from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            # TypeError/ValueError: the header's algorithm does not fit the published key.
            raise AuthenticationError(
                f"The OIDC token failed verification: {exc}.",
                "Use the token your CI's OIDC issuer minted, unmodified and unexpired.",
            ) from exc
        _checked_subject(claims)
        return _checked(claims), resolved

    def leaf_holder(self, cert: x509.Certificate, ca_certificate: x509.Certificate
                    ) -> Principal:
        """Whoever signed with the key of ``cert``, a leaf this CA issued and valid now:
        the identity and namespace it was issued to (Rekor's writes carry no token)."""
        try:
            identity, namespace = uploads.own_leaf_holder(cert, ca_certificate,
                                                          datetime.now(UTC))
        except uploads.NotIssuedByUs as exc:
            raise PermissionDenied(
                "The certificate was not issued by this service's CA: only signatures under "
                "its own leaves are logged here.",
                "Get the certificate from this service (POST /api/v2/signingCert).") from exc
        except uploads.LeafRefused as exc:
            raise UsageError(f"The certificate is refused: {exc}.",
                             "Request a fresh certificate and sign again right away.") from exc
        issuer = Provenance.from_certificate(cert).issuer or ""
        return Principal("leaf", identity, issuer, leaf_namespace=namespace)

    # -- authorization ------------------------------------------------------------------------
    def permissions(self, principal: Principal, namespace: str) -> frozenset[str]:
        if principal.kind == "leaf":
            # The policies were applied when the leaf was issued, minutes ago; holding its
            # key allows storing signatures under it, in its namespace only.
            return frozenset({"sign"}) if principal.leaf_namespace == namespace else frozenset()
        if principal.api_key is not None:
            if principal.is_server_admin:
                return PERMISSIONS
            return principal.api_key.permissions if principal.api_key.namespace == namespace \
                else frozenset()
        granted: set[str] = set()
        for policy in self.policies():
            if policy.namespace == namespace and policy.issuer == principal.issuer and all(
                _claim_text(principal.claims.get(k)) == v for k, v in policy.claims.items()
            ):
                granted |= policy.permissions
        return frozenset(granted)

    def authorize(self, principal: Principal, namespace: str, permission: str) -> None:
        if permission in self.permissions(principal, namespace):
            return
        # Same answer whether or not the namespace exists, so names do not leak.
        raise PermissionDenied(
            f"{principal.identity} may not {permission} in namespace '{namespace}'.",
            _how_to_grant(principal, namespace, permission),
        )


MAX_SUBJECT_LENGTH = 1024  # the identity column, and far past any real subject


def _checked_subject(claims: Mapping[str, Any]) -> str:
    """The identity becomes a certificate URI: printable ASCII only, bounded."""
    subject = str(claims["sub"])
    if not subject.isascii() or not subject.isprintable() or len(subject) > MAX_SUBJECT_LENGTH:
        raise AuthenticationError(
            "The token's subject is not printable ASCII of at most "
            f"{MAX_SUBJECT_LENGTH} characters, so it cannot name a certificate identity.",
            "Use a token whose 'sub' is a plain identifier.")
    return subject


def _checked(claims: dict[str, Any]) -> dict[str, Any]:
    """Claims reach certificates and the database: no control characters in any text."""
    for name, value in claims.items():
        if isinstance(value, str) and not value.isprintable():
            raise AuthenticationError(f"The token's '{name}' claim holds control characters.",
                                      "Use a token minted by the CI's OIDC issuer.")
    return claims


def _claim_text(value: Any) -> str | None:
    # Exact comparison on the claim's text: 'acme' never admits 'acme-evil'.
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _how_to_grant(principal: Principal, namespace: str, permission: str) -> str:
    if principal.kind == "apikey":
        return (f"Use an API key of namespace '{namespace}' with the '{permission}' permission.")
    return (f"A namespace admin must add a policy: signer policy add --namespace {namespace} "
            f"--issuer {principal.issuer} --claim repository_owner=<owner> "
            f"--permissions {permission}.")
