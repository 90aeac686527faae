"""The HTTP API. Routes are thin: authenticate, translate, call the service, translate back."""

from __future__ import annotations

import time
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signer import issuers, slsa, trust
from signer.artifact import parse_ref
from signer.errors import NotFound, PermissionDenied, Unavailable
from signer.service import (
    attesting,
    audit,
    limits,
    log_api,
    models,
    problems,
    sigstore_api,
    tile_api,
    timestamping,
    web,
)
from signer.service.auth import Principal, check_policy, parse_permissions
from signer.service.dependencies import PrincipalDep, RuntimeDep, runtime
from signer.service.runtime import Runtime
from signer.service.signing import check_namespace, signature_view, signature_view_json
from signer.service.store import ApiKey, DeclaredIssuer, Policy

# Every request body the API takes is a few KB; a megabyte is far past any honest one.
MAX_BODY_BYTES = 1024 * 1024
TRUST_ROOT_MEDIA_TYPE = trust.MEDIA_TYPE

REQUESTS = Counter("signer_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("signer_http_request_seconds", "HTTP request latency", ["route"])
SIGNATURES = Counter("signer_signatures_total", "Signatures stored")
ATTESTATIONS = Counter("signer_attestations_total", "Attestations stored")

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": models.Problem, "content": {problems.MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="signer", version="1", responses=PROBLEM_RESPONSES,
                  description="Keyless signing: certificates, timestamps, signatures.")
    app.state.runtime = runtime
    problems.install(app)
    limits.install(app, MAX_BODY_BYTES, limits.RateLimiter.from_settings(runtime.settings),
                   larger={attesting.ATTESTATIONS_PATH: attesting.MAX_ATTESTATION_BODY_BYTES})

    app.add_middleware(Metrics)
    app.add_middleware(audit.RequestIds, audit=runtime.audit)  # outermost: every answer has one

    app.include_router(_signing_routes())
    app.include_router(_admin_routes())
    app.include_router(_issuer_routes())
    app.include_router(_operations_routes())
    app.include_router(log_api.router())
    app.include_router(_tuf_routes())
    app.include_router(sigstore_api.router())
    app.include_router(tile_api.router())
    app.include_router(web.router())
    app.mount(web.STATIC_PATH, web.static_files(), name="ui-static")
    return app


class Metrics:
    """Request count and latency per route (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - start)
            REQUESTS.labels(path, str(status)).inc()


def _signing_routes() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["signing"])

    @router.post("/certificates", response_model=models.CertificateResponse)
    def issue_certificate(body: models.CertificateRequest, rt: RuntimeDep,
                          principal: PrincipalDep) -> models.CertificateResponse:
        issued = rt.service.issue_certificate(principal, body.namespace, body.csr,
                                              body.provenance)
        return models.CertificateResponse(
            certificate_chain=[c.public_bytes(Encoding.PEM).decode() for c in issued.chain],
            identity=issued.identity, issuer=issued.provenance.issuer or principal.issuer,
            provenance=issued.provenance.as_dict(),
        )

    @router.post("/signatures", response_model=models.SignatureView, status_code=201,
                 responses={200: {"model": models.SignatureView,
                                  "description": "Already stored (idempotent retry)"}})
    def submit_signature(body: models.SignatureRequest, rt: RuntimeDep,
                         principal: PrincipalDep, response: Response) -> dict[str, Any]:
        row, created = rt.service.submit_signature(principal, body.namespace, body.name,
                                                   body.certificate, body.signature)
        if created:
            SIGNATURES.inc()
        else:
            response.status_code = 200
        return signature_view(row)

    @router.post("/sign", status_code=201, response_class=Response, responses={
        201: {"model": models.SignatureView, "description": "Signed: the stored entry"},
        200: {"model": models.SignatureView, "description": "Already stored (idempotent retry)"}},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": models.SignRequest.model_json_schema()}}}})
    async def sign(request: Request) -> Response:
        """One request per signing: certificate, timestamp, log entries, bundle.

        The hot route, kept lean: one hop to the thread pool for all of its blocking work
        (no per-request dependency or response-model layers), the body validated by its model
        straight from the bytes, the answer written with the stored bundle spliced in."""
        body = await request.body()
        status, content = await run_in_threadpool(_sign, request, body)
        return Response(content, status, media_type="application/json")

    @router.get("/signatures", response_model=models.SignatureList)
    def list_signatures(rt: RuntimeDep, principal: PrincipalDep,
                        namespace: Annotated[str, Query(max_length=64)],
                        name_prefix: Annotated[str, Query(max_length=600)] = "",
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        ) -> models.SignatureList:
        check_namespace(namespace)
        rt.auth.authorize(principal, namespace, "verify")
        rows = rt.store.list_signatures(namespace, name_prefix, limit)
        return models.SignatureList(signatures=[models.SignatureSummary(
            id=r.id, name=f"{r.name}@sha256:{r.digest}", digest=f"sha256:{r.digest}",
            identity=r.identity, issuer=r.issuer, source_repository_ref=r.source_repository_ref,
            created_at=r.created_at, revoked=r.revoked) for r in rows])

    @router.get("/signatures/{signature_id}", response_model=models.SignatureView)
    def show_signature(signature_id: str, rt: RuntimeDep,
                       principal: PrincipalDep, namespace: Annotated[str, Query(max_length=64)]
                       ) -> dict[str, Any]:
        check_namespace(namespace)
        rt.auth.authorize(principal, namespace, "verify")
        return signature_view(rt.store.get_signature(namespace, signature_id))

    @router.get("/entries", response_model=models.Entries)
    def entries(rt: RuntimeDep, principal: PrincipalDep,
                namespace: Annotated[str, Query(max_length=64)],
                name: Annotated[str, Query(max_length=600)]) -> dict[str, Any]:
        rows = rt.service.entries(principal, namespace, parse_ref(name))
        return {"entries": [signature_view(r) for r in rows]}

    @router.get("/provenance", response_model=models.ProvenanceResponse)
    def provenance(rt: RuntimeDep, principal: PrincipalDep,
                   namespace: Annotated[str, Query(max_length=64)]
                   ) -> models.ProvenanceResponse:
        return models.ProvenanceResponse(predicate_type=slsa.PREDICATE_TYPE,
                                         predicate=rt.attesting.provenance(principal, namespace))

    @router.post("/attestations", response_model=models.AttestationView, status_code=201,
                 responses={200: {"model": models.AttestationView,
                                  "description": "Already stored (idempotent retry)"}})
    def submit_attestation(body: models.AttestationRequest, rt: RuntimeDep,
                           principal: PrincipalDep, response: Response) -> dict[str, Any]:
        row, created = rt.attesting.submit(principal, body.namespace, body.name,
                                           body.certificate, body.envelope)
        if created:
            ATTESTATIONS.inc()
        else:
            response.status_code = 200
        return attesting.attestation_view(row)

    @router.get("/attestations", response_model=models.Attestations)
    def attestations(rt: RuntimeDep, principal: PrincipalDep,
                     namespace: Annotated[str, Query(max_length=64)],
                     name: Annotated[str, Query(max_length=600)],
                     predicate_type: Annotated[str | None, Query(max_length=512)] = None,
                     ) -> dict[str, Any]:
        rows = rt.attesting.find(principal, namespace, parse_ref(name), predicate_type)
        return {"attestations": [attesting.attestation_view(r) for r in rows]}

    @router.post("/revocations", response_model=models.RevocationResponse)
    def revoke(body: models.RevocationRequest, rt: RuntimeDep, principal: PrincipalDep
               ) -> models.RevocationResponse:
        revoked = rt.service.revoke(principal, body.namespace, body.name,
                                    body.source_repository_ref, body.reason)
        return models.RevocationResponse(id=revoked.id, revoked_count=revoked.count,
                                         revoked_at=revoked.revoked_at,
                                         log_index=revoked.log_index)

    @router.get("/trust-config", response_class=Response,
                responses={200: {"content": {trust.CLIENT_CONFIG_MEDIA_TYPE: {}},
                                 "description": "Sigstore ClientTrustConfig"}})
    def trust_config(rt: RuntimeDep, namespace: Annotated[str | None, Query(
            max_length=64, description="Sign in this namespace: its /ns/<namespace> URLs")
            ] = None) -> Response:
        body = trust.client_trust_config(
            rt.trust, rt.settings.url, rt.trust.cas[0].start,
            None if namespace is None else check_namespace(namespace))
        return Response(body, media_type=trust.CLIENT_CONFIG_MEDIA_TYPE)

    @router.get("/trust-root", response_class=Response,
                responses={200: {"content": {TRUST_ROOT_MEDIA_TYPE: {}},
                                 "description": "Sigstore trusted_root.json"}})
    def trust_root(rt: RuntimeDep) -> Response:
        return Response(rt.trust.to_json(), media_type=TRUST_ROOT_MEDIA_TYPE)

    return router


def _tuf_routes() -> APIRouter:
    router = APIRouter(prefix="/tuf", tags=["trust"])

    @router.get("/{name:path}", response_class=Response,
                responses={200: {"content": {"application/json": {}},
                                 "description": "TUF metadata, or a target"}})
    def tuf_file(name: str, rt: RuntimeDep) -> Response:
        """The TUF repository of the trust root and signing config: ``<N>.root.json``,
        ``timestamp.json``, ``<V>.snapshot.json``, ``<V>.targets.json``,
        ``targets/<sha256>.<name>``."""
        if rt.tuf is None:
            raise NotFound("This service publishes no TUF repository.",
                           "Run 'signer tuf init --data-dir DIR' and restart the service.")
        body = rt.tuf.read(name)
        # timestamp.json changes (it is renewed); every other name is immutable content.
        cache = "no-cache" if name == "timestamp.json" else "public, max-age=86400, immutable"
        return Response(body, media_type="application/json", headers={"Cache-Control": cache})

    return router


def _sign(request: Request, body: bytes) -> tuple[int, bytes]:
    rt = runtime(request)
    principal = rt.auth.authenticate(request.headers.get("authorization"))
    audit.identify(principal)  # as the principal dependency does for the other routes
    limits.check(request, principal)
    try:
        sign = models.SignRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    row, created = rt.service.sign(principal, sign.namespace, sign.name, sign.csr,
                                   sign.signature, sign.provenance)
    if created:
        SIGNATURES.inc()
    return 201 if created else 200, signature_view_json(row)


def _server_admin(principal: Principal, what: str) -> None:
    if not principal.is_server_admin:
        raise PermissionDenied(f"Only the server admin key may manage {what}.",
                               "Use the admin API key 'signer server init' printed.")


def _admin_routes() -> APIRouter:
    router = APIRouter(prefix="/v1/namespaces", tags=["admin"])

    def namespace_admin(rt: Runtime, principal: Principal, namespace: str) -> None:
        check_namespace(namespace)
        rt.auth.authorize(principal, namespace, "admin")
        if not rt.store.namespace_exists(namespace):
            raise NotFound(f"No namespace '{namespace}'.",
                           "Create it with 'signer namespace create'.")

    @router.post("", response_model=models.NamespaceView, status_code=201)
    def create_namespace(body: models.NamespaceRequest, rt: RuntimeDep,
                         principal: PrincipalDep) -> models.NamespaceView:
        _server_admin(principal, "namespaces")
        created = rt.store.create_namespace(check_namespace(body.name))
        rt.audit.admin("namespace.create", body.name)
        return models.NamespaceView(name=body.name, created_at=created)

    @router.get("", response_model=models.NamespaceList)
    def list_namespaces(rt: RuntimeDep, principal: PrincipalDep) -> models.NamespaceList:
        _server_admin(principal, "namespaces")
        return models.NamespaceList(namespaces=[
            models.NamespaceView(name=n, created_at=c) for n, c in rt.store.list_namespaces()])

    @router.post("/{namespace}/policies", response_model=models.PolicyView, status_code=201)
    def add_policy(namespace: str, body: models.PolicyRequest, rt: RuntimeDep,
                   principal: PrincipalDep) -> models.PolicyView:
        namespace_admin(rt, principal, namespace)
        check_policy(rt.auth.issuer(body.issuer), body.claims)
        policy = rt.store.add_policy(namespace, body.issuer, body.claims,
                                     parse_permissions(body.permissions))
        rt.auth.invalidate_policies()
        rt.audit.admin("policy.add", **_policy_view(policy).model_dump())
        return _policy_view(policy)

    @router.get("/{namespace}/policies", response_model=models.PolicyList)
    def list_policies(namespace: str, rt: RuntimeDep, principal: PrincipalDep
                      ) -> models.PolicyList:
        namespace_admin(rt, principal, namespace)
        return models.PolicyList(policies=[_policy_view(p)
                                           for p in rt.store.list_policies(namespace)])

    @router.delete("/{namespace}/policies/{policy_id}", status_code=204)
    def remove_policy(namespace: str, policy_id: str, rt: RuntimeDep,
                      principal: PrincipalDep) -> Response:
        namespace_admin(rt, principal, namespace)
        rt.store.remove_policy(namespace, policy_id)
        rt.auth.invalidate_policies()
        rt.audit.admin("policy.remove", namespace, id=policy_id)
        return Response(status_code=204)

    @router.post("/{namespace}/api-keys", response_model=models.ApiKeyCreated,
                 status_code=201)
    def create_api_key(namespace: str, body: models.ApiKeyRequest, rt: RuntimeDep,
                       principal: PrincipalDep) -> models.ApiKeyCreated:
        namespace_admin(rt, principal, namespace)
        key, token = rt.store.create_api_key(namespace, body.name,
                                             parse_permissions(body.permissions),
                                             principal.identity)
        rt.audit.admin("api_key.create", **_key_view(key).model_dump())  # no token
        return models.ApiKeyCreated(**_key_view(key).model_dump(), token=token)

    @router.get("/{namespace}/api-keys", response_model=models.ApiKeyList)
    def list_api_keys(namespace: str, rt: RuntimeDep, principal: PrincipalDep
                      ) -> models.ApiKeyList:
        namespace_admin(rt, principal, namespace)
        return models.ApiKeyList(api_keys=[_key_view(k)
                                           for k in rt.store.list_api_keys(namespace)])

    @router.delete("/{namespace}/api-keys/{key_id}", response_model=models.ApiKeyView)
    def revoke_api_key(namespace: str, key_id: str, rt: RuntimeDep, principal: PrincipalDep
                       ) -> models.ApiKeyView:
        namespace_admin(rt, principal, namespace)
        revoked = _key_view(rt.store.revoke_api_key(namespace, key_id))
        rt.audit.admin("api_key.revoke", **revoked.model_dump())
        return revoked

    return router


def _issuer_routes() -> APIRouter:
    router = APIRouter(prefix="/v1/issuers", tags=["admin"])

    @router.post("", response_model=models.IssuerView, status_code=201)
    def add_issuer(body: models.IssuerRequest, rt: RuntimeDep, principal: PrincipalDep
                   ) -> models.IssuerView:
        _server_admin(principal, "issuers")
        issuer = issuers.declare(body.url, body.type, body.server_url, body.allow_http)
        # Stored as given: no server URL means the kind's default, decided when read.
        server_url = issuer.server_url if body.server_url is not None else None
        row = rt.store.add_issuer(issuer.url, issuer.kind, server_url, issuer.allow_http,
                                  principal.identity)
        rt.auth.invalidate_issuers()
        rt.audit.admin("issuer.add", **_issuer_view(row, issuer).model_dump())
        return _issuer_view(row, issuer)

    @router.get("", response_model=models.IssuerList)
    def list_issuers(rt: RuntimeDep, principal: PrincipalDep) -> models.IssuerList:
        _server_admin(principal, "issuers")
        return models.IssuerList(issuers=[
            _issuer_view(r, issuers.declare(r.url, r.kind, r.server_url, r.allow_http))
            for r in rt.store.list_issuers()])

    @router.delete("", status_code=204)
    def remove_issuer(rt: RuntimeDep, principal: PrincipalDep,
                      url: Annotated[str, Query(max_length=512)]) -> Response:
        _server_admin(principal, "issuers")
        rt.store.remove_issuer(issuers.normalized(url))
        rt.auth.invalidate_issuers()
        rt.audit.admin("issuer.remove", url=issuers.normalized(url))
        return Response(status_code=204)

    return router


def _issuer_view(row: DeclaredIssuer, issuer: issuers.Issuer) -> models.IssuerView:
    return models.IssuerView(url=row.url, type=row.kind, server_url=issuer.server_url,
                             allow_http=row.allow_http, created_at=row.created_at,
                             created_by=row.created_by)


def _policy_view(policy: Policy) -> models.PolicyView:
    return models.PolicyView(id=policy.id, namespace=policy.namespace, issuer=policy.issuer,
                             claims=policy.claims, permissions=sorted(policy.permissions),
                             created_at=policy.created_at)


def _key_view(key: ApiKey) -> models.ApiKeyView:
    return models.ApiKeyView(id=key.id, namespace=key.namespace, name=key.name,
                             permissions=sorted(key.permissions), created_at=key.created_at,
                             revoked_at=key.revoked_at)


def _operations_routes() -> APIRouter:
    router = APIRouter(tags=["operations"])
    @router.post("/v1/timestamp", response_class=Response,
                 responses=timestamping.REPLY_DOC, tags=["timestamp"])
    async def timestamp(request: Request) -> Response:
        return await timestamping.reply(request)

    @router.post("/api/v1/timestamp", response_class=Response,
                 responses=timestamping.REPLY_DOC, tags=["timestamp"], include_in_schema=False)
    async def timestamp_sigstore_path(request: Request) -> Response:
        return await timestamping.reply(request)

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(rt: RuntimeDep) -> dict[str, str]:
        rt.store.namespace_exists("readyz")  # raises 503 when the database is down
        if not rt.service.sequencer_reachable():
            raise Unavailable("The transparency log's sequencer is not running yet.",
                              "Wait for 'signer server start' to start it; its log says why "
                              "it does not.")
        return {"status": "ready"}

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

