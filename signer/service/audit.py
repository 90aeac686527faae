"""The audit log: one JSON line per decision, with the request id and the principal.

What is a decision: a certificate issued, a signature or attestation stored, a revocation, a
refusal (every problem document the API answers), an admin change (namespaces, policies, API
keys, issuers) and a key rotation. Each is a typed event below; :class:`Audit` is the one
writer. Every line has ``time`` (RFC 3339, UTC), ``event``, ``request_id`` (the one in the
``X-Request-Id`` header and in every problem document) and ``principal`` (the identity the
credentials proved, or ``anonymous``), then the event's own fields. Never a token, an API key's
secret, a passphrase, a PIN or key bytes: the events have no field that could hold one.

Where it goes (``--audit-log`` / ``SIGNER_AUDIT_LOG``): a file, opened ``O_APPEND`` by each
worker; ``-``, standard output; unset, the ``signer.audit`` logger, which writes to the
service's own log stream (stderr) unless the operator's logging configuration routes it.

Durability: a line is written (one ``write(2)``, flushed to the kernel) at the decision, before
the response is sent, so a crash of the process loses no line of an answered request; it is
not fsynced (as the database, ``synchronous=NORMAL``). A line is kept under 4 KiB
(``PIPE_BUF``): an ``O_APPEND`` write of a regular file is placed at the end atomically, and
a write to a pipe up to ``PIPE_BUF`` is atomic, so lines of concurrent workers never
interleave. A line that cannot be written makes the request fail (503): nothing is handed
out unaudited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signer.errors import SignerError, Unavailable, UsageError
from signer.provenance import Provenance
from signer.service.auth import Principal

LOGGER = "signer.audit"
ANONYMOUS = "anonymous"
REQUEST_ID_HEADER = b"x-request-id"  # X-Request-Id, as ASGI spells headers
# A proxy's request id is kept when it is plain text of a sane length; otherwise ours.
INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
MAX_LINE_BYTES = 4096  # PIPE_BUF on Linux: one write of a line is atomic on a pipe too
MAX_TEXT = 1024  # any one text field (an identity is at most 1024, a name ~600)
SHORTER_TEXT = (128, 32)  # the fallbacks when a line would pass MAX_LINE_BYTES

log = logging.getLogger("signer.service")


# -- the request a decision belongs to --------------------------------------------------------
@dataclass
class RequestContext:
    """Set per request by :class:`RequestIds`; the principal once credentials are checked.

    Mutable on purpose: sync routes and dependencies run in a thread with a copy of the
    context, so they fill in this object rather than set a variable."""

    request_id: str
    audit: Audit
    method: str
    path: str
    principal: Principal | None = None


_current: ContextVar[RequestContext | None] = ContextVar("signer_request", default=None)


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def identify(principal: Principal) -> None:
    """The request's caller is known: its lines name it from now on."""
    context = _current.get()
    if context is not None:
        context.principal = principal


class RequestIds:
    """ASGI middleware: a request id per HTTP request, in the context and ``X-Request-Id``."""

    def __init__(self, app: ASGIApp, audit: Audit) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = given if INCOMING_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _current.set(RequestContext(request_id, self.audit, scope.get("method", ""),
                                             scope.get("path", "")))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


# -- the events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    event: ClassVar[str]


@dataclass(frozen=True)
class CertificateIssued(Event):
    event = "certificate_issued"
    serial: str
    identity: str
    issuer: str
    namespace: str
    provenance_source: str | None
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class EntryStored(Event):
    event = "entry_stored"
    kind: str  # "signature" or "attestation"
    entry_id: str
    namespace: str
    name: str
    digest: str
    log_tree: str | None  # "tlog" (Rekor v1) or "tlog2" (Rekor v2): where log_index is
    log_index: int | None


@dataclass(frozen=True)
class Revoked(Event):
    event = "revoked"
    revocation_id: str
    namespace: str
    name: str
    source_repository_ref: str
    reason: str
    count: int
    log_index: int


@dataclass(frozen=True)
class Refused(Event):
    event = "refused"
    check: str  # which check refused: the error's kind (permission, authentication, …)
    status: int
    title: str
    detail: str
    method: str  # the request's, e.g. POST /v1/certificates (the path, not its query)
    path: str


@dataclass(frozen=True)
class AdminChange(Event):
    event = "admin_change"
    action: str  # namespace.create, policy.add, api_key.revoke, issuer.remove, …
    namespace: str | None
    target: Mapping[str, Any]  # what changed: ids, names, claims; never a secret


@dataclass(frozen=True)
class KeyRotated(Event):
    event = "key_rotated"
    kind: str  # ca, tsa, tlog, ctlog
    retired_key: str  # file names, never their content
    active_key: str
    active_from: datetime


# -- the writer -------------------------------------------------------------------------------
Sink = Callable[[bytes], None]


class Audit:
    """The one writer of audit lines; one per process."""

    def __init__(self, sink: Sink, principal: str | None = None) -> None:
        self._sink = sink
        # Outside a request (a 'signer server' command), who ran it on this machine.
        self._local_principal = principal

    @classmethod
    def open(cls, destination: str | None, principal: str | None = None) -> Audit:
        """``destination``: a file (appended), ``-`` (stdout), None (the service's log)."""
        if destination is None:
            return cls(_logger_sink(), principal)
        if destination == "-":
            return cls(_fd_sink(sys.stdout.fileno()), principal)
        try:
            fd = os.open(destination, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise UsageError(f"The audit log {destination} cannot be opened: {exc.strerror}.",
                             "Give --audit-log a writable file, or '-' for standard "
                             "output.") from exc
        return cls(_fd_sink(fd), principal)

    @classmethod
    def for_command(cls, destination: str | None) -> Audit:
        """The writer of a ``signer server`` command: the principal is the local user."""
        return cls.open(destination, f"local:{_local_user()}")

    # -- one method per decision: a short line at each decision point --------------------------
    def issued(self, cert: x509.Certificate, namespace: str, identity: str,
               provenance: Provenance) -> None:
        self.record(CertificateIssued(format(cert.serial_number, "x"), identity,
                                      provenance.issuer or "", namespace,
                                      provenance.provenance_source, cert.not_valid_before_utc,
                                      cert.not_valid_after_utc))

    def stored(self, kind: str, entry_id: str, namespace: str, name: str, digest: str,
               log_tree: str | None, log_index: int | None) -> None:
        self.record(EntryStored(kind, entry_id, namespace, name, digest, log_tree, log_index))

    def revoked(self, revocation_id: str, namespace: str, name: str, ref: str, reason: str,
                count: int, log_index: int) -> None:
        self.record(Revoked(revocation_id, namespace, name, ref, reason, count, log_index))

    def admin(self, action: str, namespace: str | None = None, **target: Any) -> None:
        self.record(AdminChange(action, namespace, target))

    def rotated(self, kind: str, retired_key: str, active_key: str, active_from: datetime
                ) -> None:
        self.record(KeyRotated(kind, retired_key, active_key, active_from))

    def record(self, event: Event) -> None:
        context = _current.get()
        head: dict[str, str | None]
        if context is None:  # a command, not a request
            head = {"request_id": None, "principal": self._local_principal or ANONYMOUS}
        elif context.principal is None:  # refused before its credentials were accepted
            head = {"request_id": context.request_id, "principal": ANONYMOUS}
        else:
            head = {"request_id": context.request_id, "principal": context.principal.identity,
                    "principal_issuer": context.principal.issuer}
        head = {"time": _rfc3339(datetime.now(UTC)), "event": event.event, **head}
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        try:
            self._sink(_line(head | fields))
        except OSError as exc:
            log.error("audit log not written: %s", exc.strerror)  # noqa: TRY400 (no trace)
            raise Unavailable("The audit log cannot be written, so the service answers "
                              "nothing it would not have recorded.",
                              "Retry later; an operator must fix the audit log's "
                              "destination (disk full?).") from exc


def check_name(exc: SignerError) -> str:
    """The check an error comes from, as the audit names it: ``PermissionDenied`` → permission."""
    return CHECKS.get(type(exc).__name__, type(exc).__name__)


CHECKS = {"UsageError": "usage", "AuthenticationError": "authentication",
          "PermissionDenied": "permission", "NotFound": "not-found", "Conflict": "conflict",
          "TooLarge": "size", "RateLimited": "rate-limit", "RateLimitExceeded": "rate-limit",
          "Unavailable": "unavailable", "VerificationFailed": "verification"}


def refused(check: str, status: int, title: str, detail: str) -> None:
    """A problem document is being answered: record it with the writer of this request."""
    context = _current.get()
    if context is None:
        return
    with contextlib.suppress(Unavailable):  # logged; the refusal is still answered
        context.audit.record(Refused(check, status, title, detail, context.method,
                                     context.path))


# -- encoding and sinks -----------------------------------------------------------------------
def _line(fields: Mapping[str, Any]) -> bytes:
    line = json.dumps(_bounded(fields, MAX_TEXT), default=_json, separators=(",", ":"))
    for limit in SHORTER_TEXT:  # cut the text fields until the line fits in one atomic write
        if len(line) < MAX_LINE_BYTES:
            break
        line = json.dumps(_bounded(fields, limit) | {"truncated": True}, default=_json,
                          separators=(",", ":"))
    return (line + "\n").encode()  # ensure_ascii: as many bytes as characters


def _bounded(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, Mapping):
        return {str(k)[:limit]: _bounded(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (frozenset, set)) else value
        return [_bounded(v, limit) for v in items]
    return value


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return _rfc3339(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fd_sink(fd: int) -> Sink:
    def write(line: bytes) -> None:
        written = os.write(fd, line)  # one write per line: atomic with O_APPEND
        if written != len(line):
            raise OSError(0, f"short write to the audit log ({written} of {len(line)} bytes)")

    return write


def _logger_sink() -> Sink:
    logger = logging.getLogger(LOGGER)
    if not logger.handlers:  # no logging configuration routes it: the service's stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)

    def write(line: bytes) -> None:
        logger.info(line.decode().rstrip("\n"))

    return write


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid:{os.getuid()}"
