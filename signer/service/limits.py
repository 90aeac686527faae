"""Request limits: the body size of every request, and the request rate of each principal.

Body size: every request body the API takes is a few KB (``MAX_BODY_BYTES`` in app.py is
1 MiB). A declared ``Content-Length`` over it is refused before the body is read; a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the limit, so
no request can make the service buffer more than the limit.

Rate: a token bucket per principal, keyed by what the authenticator established (the API
key's id, or the OIDC issuer and subject), never by anything a caller can choose freely. A
bucket holds ``burst`` requests and refills at ``rate`` per second; a request finding it
empty is answered 429 with ``Retry-After``. Buckets live in each worker process: with W
workers and R replicas a principal gets at most W x R times the rate. Configured by the
settings ``rate_limit`` (requests per second, 0 turns the limit off) and ``rate_burst``
(``SIGNER_RATE_LIMIT``, ``SIGNER_RATE_BURST``; their defaults and reasons are in config.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signer.errors import RateLimited, TooLarge
from signer.service import problems
from signer.service.auth import Principal
from signer.service.config import OPTIONS, Settings

# Buckets of idle principals are dropped beyond this many, oldest first: a full bucket and
# a missing one mean the same, so forgetting them costs nothing.
MAX_BUCKETS = 10_000


class RateLimitExceeded(RateLimited):
    def __init__(self, detail: str, fix: str, retry_after: int) -> None:
        super().__init__(detail, fix)
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by principal; thread-safe (sync routes run in a thread pool)."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("the rate limit needs rate >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.rate_limit, settings.rate_burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Take one request from the key's bucket: 0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            wait = 0.0
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
            else:
                wait = (1.0 - bucket.tokens) / self.rate
            self._buckets[key] = bucket  # most recently used last
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait

    def check(self, principal: Principal) -> None:
        wait = self.take(principal_key(principal))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimitExceeded(
                f"{principal.identity} sent more than {self.burst} requests in a burst or "
                f"more than {self.rate:g} a second.",
                f"Retry after {retry_after} s (Retry-After), and spread the requests out; an "
                f"operator can raise the limit with {OPTIONS['rate_limit'].env} / "
                f"{OPTIONS['rate_burst'].env}.",
                retry_after)


def principal_key(principal: Principal) -> str:
    if principal.api_key is not None:
        return f"apikey:{principal.api_key.id}"
    return f"oidc:{principal.issuer}\n{principal.identity}"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int, larger: Mapping[str, int] | None = None
                 ) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, declared.decode("latin-1")[:20], limit)
            return
        received = 0
        too_large = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge  # the app stops reading; whatever it answers is replaced
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await self._refuse(scope, receive, send, f"more than {limit}", limit)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not answered:
                answered = True
                await self._refuse(scope, receive, send, f"more than {limit}", limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str,
                      limit: int) -> None:
        err = TooLarge(f"The request body is {size} bytes; the limit is {limit}.",
                       "Send only the documented fields." if limit == self.limit else
                       "Attest a smaller predicate: the statement is bounded "
                       "(MAX_STATEMENT_BYTES, signer.service.attesting).")
        response = problems.problem(err.status, err.title, err.explain(),
                                    headers={"Connection": "close"}, check="body-size")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def install(app: FastAPI, max_body_bytes: int, limiter: RateLimiter,
            larger: Mapping[str, int] | None = None) -> None:
    """Wire both limits into the app; routes then call :func:`check` with their principal.

    ``larger``: paths with a body limit of their own (the attestations route's predicates).
    """
    app.state.rate_limiter = limiter
    app.add_middleware(BodyLimit, limit=max_body_bytes, larger=larger)

    async def rate_limited(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimitExceeded)
        return problems.problem(exc.status, exc.title, exc.explain(),
                                headers={"Retry-After": str(exc.retry_after)},
                                check="rate-limit")

    app.add_exception_handler(RateLimitExceeded, rate_limited)


def check(request: Request, principal: Principal) -> None:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(principal)
