"""The page's routes under /ui. Thin: read the session, call a query, render a template."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from signer.artifact import MAX_NAME_LENGTH, ArtifactRef
from signer.errors import SignerError
from signer.service import audit
from signer.service.runtime import Runtime
from signer.service.store import ArtifactRecord, AttestationRecord, SignatureRecord
from signer.service.store.page import (
    MAX_REPOSITORY_CHOICES,
    STATUSES,
    Cursor,
    ListQuery,
    PageReads,
)
from signer.service.web import queries, views
from signer.service.web.pages import SECURITY_HEADERS, render
from signer.service.web.sessions import (
    COOKIE_PATH,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    SIGN_IN_CSRF_COOKIE,
    Sessions,
    WebSession,
    new_token,
    same_token,
)

HOME = "/ui/artifacts"
SIGN_IN = "/ui/sign-in"
# The sign-in form's double-submit cookie lives as long as someone may take to type a key.
SIGN_IN_CSRF_SECONDS = 3600
MAX_FILTER_LENGTH = 1024
# A whole reference: a name of MAX_NAME_LENGTH, "@sha256:" and 64 hex digits.
MAX_SEARCH_LENGTH = MAX_NAME_LENGTH + 8 + 64


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _sessions(request: Request) -> Sessions:
    rt = _runtime(request)
    return Sessions(rt.store, rt.auth)


def _page(request: Request) -> PageReads:
    return _runtime(request).store.page


def _session(request: Request) -> WebSession | None:
    return _sessions(request).current(request.cookies.get(SESSION_COOKIE))


def _secure(request: Request) -> bool:
    """Cookies are Secure whenever the page is served over https (directly or via a proxy)."""
    return request.url.scheme == "https" or \
        _runtime(request).settings.url.startswith("https://")


def _same_origin(request: Request) -> bool:
    """A browser's Origin, when it sends one, must be this site (defence beside the token)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _safe_next(target: str) -> str:
    """Only a path of this page: never another site, never a scheme-relative URL."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target \
            and len(target) <= 2048:
        return target
    return HOME


def _redirect(target: str, headers: dict[str, str] | None = None) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers={**SECURITY_HEADERS,
                                                               **(headers or {})})


def _to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect(f"{SIGN_IN}?{urlencode({'next': here})}")


def _not_found(session: WebSession, what: str) -> Response:
    # The same answer whether the id exists in another namespace or nowhere: names do not leak.
    return render("message.html", {
        "session": session, "heading": "Not found",
        "message": f"There is no such {what} in namespace '{session.namespace}'.",
        "back_href": HOME, "back_label": "Back to artifacts"}, status_code=404)


def _refused(session: WebSession | None) -> Response:
    return render("message.html", {
        "session": session, "heading": "Form refused",
        "message": "The form's security token is missing or stale, so nothing was done. "
                   "Reload the page and submit it again.",
        "back_href": HOME if session else SIGN_IN,
        "back_label": "Back to artifacts" if session else "Back to sign-in"}, status_code=403)


def _sign_in_page(request: Request, next_url: str, error: str | None = None,
                  status_code: int = 200) -> Response:
    token = request.cookies.get(SIGN_IN_CSRF_COOKIE) or new_token()
    response = render("sign_in.html", {"session": None, "csrf_token": token,
                                       "next": next_url, "error": error},
                      status_code=status_code)
    response.set_cookie(SIGN_IN_CSRF_COOKIE, token, max_age=SIGN_IN_CSRF_SECONDS,
                        path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=_secure(request))
    return response


def router() -> APIRouter:
    r = APIRouter(prefix="/ui", include_in_schema=False)

    @r.get("")
    @r.get("/")
    def home() -> Response:
        return _redirect(HOME)

    @r.get("/sign-in")
    def sign_in_form(request: Request, next: str = "") -> Response:
        if _session(request) is not None:
            return _redirect(_safe_next(next))
        return _sign_in_page(request, _safe_next(next))

    @r.post("/sign-in")
    def sign_in(request: Request,
                api_key: Annotated[str, Form()] = "",
                csrf_token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "",
                ) -> Response:
        if not same_token(request.cookies.get(SIGN_IN_CSRF_COOKIE), csrf_token) \
                or not _same_origin(request):
            return _refused(None)
        try:
            token, session = _sessions(request).sign_in(api_key)
        except SignerError as exc:
            audit.refused(audit.check_name(exc), exc.status, exc.title, exc.explain())
            return _sign_in_page(request, _safe_next(next), exc.explain(), exc.status)
        response = _redirect(_safe_next(next))
        response.set_cookie(SESSION_COOKIE, token,
                            max_age=int(SESSION_LIFETIME.total_seconds()),
                            expires=session.expires_at, path=COOKIE_PATH, httponly=True,
                            samesite="lax", secure=_secure(request))
        response.delete_cookie(SIGN_IN_CSRF_COOKIE, path=COOKIE_PATH)
        return response

    @r.post("/sign-out")
    def sign_out(request: Request,
                 csrf_token: Annotated[str, Form()] = "") -> Response:
        session = _session(request)
        if session is None:
            return _redirect(SIGN_IN)
        if not same_token(session.csrf_token, csrf_token) or not _same_origin(request):
            return _refused(session)
        _sessions(request).sign_out(request.cookies.get(SESSION_COOKIE))
        response = _redirect(SIGN_IN)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True,
                               samesite="lax", secure=_secure(request))
        return response

    @r.get("/artifacts")
    def artifact_list(request: Request, q: str = "", status: str = "", repo: str = "",
                      sort: str = "updated", order: str = "desc", after: str = "",
                      before: str = "") -> Response:
        session = _session(request)
        if session is None:
            return _to_sign_in(request)
        return _artifact_list(request, session, q=q[:MAX_SEARCH_LENGTH], status=status,
                              repo=repo[:MAX_FILTER_LENGTH], sort=sort, order=order,
                              after=after, before=before)

    @r.get("/artifacts/{artifact_id}")
    def artifact_details(request: Request, artifact_id: str) -> Response:
        session = _session(request)
        if session is None:
            return _to_sign_in(request)
        page = _page(request)
        row = page.get_artifact(session.namespace, artifact_id[:64])
        if row is None:
            return _not_found(session, "artifact")
        rows = page.artifact_signatures(session.namespace, row.id)
        summaries = [views.signature_summary(s) for s in rows]
        return render("artifact.html", {
            "session": session, "active": "artifacts", "artifact": row,
            "meta": views.ArtifactName.parse(row.name),
            "status": views.status(row.signature_count, row.revoked_count),
            "groups": views.provenance_groups(views.latest_provenance(rows),
                                              ("build", "source")),
            "newest": summaries[0] if summaries else None, "signatures": summaries,
            "truncated": len(rows) < row.signature_count,
            "attestations": [views.attestation_summary(a) for a in reversed(
                _runtime(request).store.attestations_of_artifact(session.namespace, row.id))]})

    def own_attestation(request: Request, attestation_id: str
                        ) -> tuple[WebSession, AttestationRecord] | Response:
        session = _session(request)
        if session is None:
            return _to_sign_in(request)
        row = _runtime(request).store.attestation(session.namespace, attestation_id[:64])
        return _not_found(session, "attestation") if row is None else (session, row)

    @r.get("/attestations/{attestation_id}")
    def attestation_details(request: Request, attestation_id: str) -> Response:
        found = own_attestation(request, attestation_id)
        if isinstance(found, Response):
            return found
        session, row = found
        return render("attestation.html", {"session": session, "active": "artifacts",
                                           "att": views.attestation_details(row)})

    @r.get("/attestations/{attestation_id}/bundle")
    def attestation_bundle(request: Request, attestation_id: str) -> Response:
        found = own_attestation(request, attestation_id)
        if isinstance(found, Response):
            return found
        _, row = found
        filename = views.attestation_filename(ArtifactRef(row.name, row.digest))
        return Response(row.bundle + "\n", media_type="application/json", headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{filename}"'})

    def own_signature(request: Request, signature_id: str
                      ) -> tuple[WebSession, SignatureRecord] | Response:
        """The signed-in namespace's signature, or the sign-in redirect or the 404 page."""
        session = _session(request)
        if session is None:
            return _to_sign_in(request)
        row = _runtime(request).store.signature(session.namespace, signature_id[:64])
        return _not_found(session, "signature") if row is None else (session, row)

    @r.get("/signatures/{signature_id}")
    def signature_details(request: Request, signature_id: str) -> Response:
        found = own_signature(request, signature_id)
        if isinstance(found, Response):
            return found
        session, row = found
        return render("signature.html", {"session": session, "active": "artifacts",
                                         "sig": views.signature_details(row)})

    @r.get("/signatures/{signature_id}/bundle")
    def signature_bundle(request: Request, signature_id: str) -> Response:
        found = own_signature(request, signature_id)
        if isinstance(found, Response):
            return found
        _, row = found
        filename = ArtifactRef(row.name, row.digest).safe_filename
        return Response(row.bundle + "\n", media_type="application/json", headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{filename}"'})

    # The service's bare URL is what a newcomer types into a browser: show them the page.
    site = APIRouter(include_in_schema=False)
    site.add_api_route("/", home, methods=["GET"])
    site.include_router(r)
    return site


def _artifact_list(request: Request, session: WebSession, *, q: str, status: str,
                   repo: str, sort: str, order: str, after: str, before: str) -> Response:
    reads = _page(request)
    choices = reads.source_repositories(session.namespace)
    repo = repo.strip()
    search = queries.parse_search(q)
    query = ListQuery(
        name_prefix=search.name_prefix, name=search.name, digest_prefix=search.digest_prefix,
        status=status if status in STATUSES else None,
        repositories=reads.resolve_repository(
            session.namespace, repo, choices if len(choices) < MAX_REPOSITORY_CHOICES else None)
        if repo else None,
        sort="created" if sort == "created" else "updated",
        descending=order != "asc",
        after=Cursor.decode(after),
        before=Cursor.decode(before),
    )
    page = reads.list_artifacts(session.namespace, query)
    filters = {"q": q.strip(), "status": query.status or "", "repo": repo,
               "sort": query.sort, "order": "desc" if query.descending else "asc"}

    def href(**cursor: str) -> str:
        params = {k: v for k, v in filters.items() if v and (k, v) not in (
            ("sort", "updated"), ("order", "desc"))}
        return "/ui/artifacts?" + urlencode({**params, **cursor})

    # The menu sends full URLs; a short form (typed into the URL) stays as its own option.
    full = repo.rstrip("/") if "://" in repo else None
    options = [{"value": c, "label": _short_repository(c), "selected": c == full}
               for c in choices]
    if repo and not any(o["selected"] for o in options):
        options.append({"value": repo, "label": _short_repository(repo) if full else repo,
                        "selected": True})
    rows = [_list_row(r) for r in page.rows]
    return render("artifacts.html", {
        "session": session, "active": "artifacts", "rows": rows, "filters": filters,
        "statuses": STATUSES, "repositories": options,
        "filtered": bool(filters["q"] or query.status or repo),
        "newer_href": href(before=page.newer.encode()) if page.newer else None,
        "older_href": href(after=page.older.encode()) if page.older else None,
    })


def _short_repository(uri: str) -> str:
    """``https://github.com/acme/app`` → ``acme/app`` (the form the CLI flags take)."""
    _, scheme, rest = uri.partition("://")
    path = rest.partition("/")[2].strip("/") if scheme else ""
    return path or uri


def _list_row(row: ArtifactRecord) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "digest": row.digest,
            "short_digest": views.short_digest(row.digest), "created_at": row.created_at,
            "updated_at": row.updated_at, "signature_count": row.signature_count,
            "status": views.status(row.signature_count, row.revoked_count)}
