"""Sigstore's service APIs, at the root and under each namespace's ``/ns/<namespace>``.

A namespace's URL (``<public-url>/ns/<namespace>``) is its Fulcio, its Rekor and its TSA:
the client config of ``GET /v1/trust-config?namespace=N`` lists them. The routes are the
same at the root, where the namespace comes from the token's policies (Fulcio) or the leaf
(Rekor). A namespace URL answers whether or not the namespace exists: policies decide what
may be done in it, and names do not leak.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Request, Response

from signer.service import fulcio_api, rekor_write, timestamping
from signer.service.dependencies import RuntimeDep

NAMESPACE_PREFIX = "/ns/{namespace}"


def router() -> APIRouter:
    api = APIRouter()
    api.include_router(fulcio_api.routes(""))
    api.include_router(rekor_write.routes(""))
    api.include_router(_tsa_routes(""))
    api.include_router(fulcio_api.routes(NAMESPACE_PREFIX))
    api.include_router(rekor_write.routes(NAMESPACE_PREFIX))
    api.include_router(_tsa_routes(NAMESPACE_PREFIX))
    return api


def _tsa_routes(prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, tags=["sigstore: timestamp"])
    chain_doc: dict[int | str, dict[str, Any]] = {
        200: {"content": {fulcio_api.PEM_CHAIN_MEDIA_TYPE: {}}}}

    @api.get("/api/v1/timestamp/certchain", response_class=Response, responses=chain_doc)
    def certchain(request: Request, rt: RuntimeDep) -> Response:
        fulcio_api.url_namespace(request)
        pem = "".join(c.public_bytes(Encoding.PEM).decode() for c in rt.trust.tsas[-1].chain)
        return Response(pem, media_type=fulcio_api.PEM_CHAIN_MEDIA_TYPE)

    if prefix:  # the root's /api/v1/timestamp is app.py's
        @api.post("/api/v1/timestamp", response_class=Response,
                  responses=timestamping.REPLY_DOC)
        async def timestamp(request: Request) -> Response:
            fulcio_api.url_namespace(request)
            return await timestamping.reply(request)

    return api
