"""The TSA over plain RFC 3161 HTTP (``application/timestamp-query``): ``openssl ts`` and
Sigstore's clients send a DER TimeStampReq and get the DER TimeStampResp."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from signer.errors import UsageError
from signer.service.dependencies import runtime
from signer.service.tsa import TimestampRequestError

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
REPLY_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {REPLY_MEDIA_TYPE: {}}, "description": "RFC 3161 TimeStampResp"}}


async def reply(request: Request) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != QUERY_MEDIA_TYPE:
        raise UsageError(f"The timestamp endpoint takes '{QUERY_MEDIA_TYPE}'.",
                         "Send the DER TimeStampReq with that Content-Type.")
    try:
        answer = runtime(request).service.tsa.respond(await request.body())
    except TimestampRequestError as exc:
        raise UsageError(str(exc), "Send a DER TimeStampReq, e.g. from 'openssl ts "
                                   "-query -data FILE -sha256 -cert'.") from exc
    return Response(answer, media_type=REPLY_MEDIA_TYPE)
