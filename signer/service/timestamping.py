"""The TSA over HTTP: RFC 3161 (``application/timestamp-query``: ``openssl ts``,
sigstore-python) and timestamp-authority's JSON request (``application/json``:
sigstore-js), both answered with the DER TimeStampResp."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from asn1crypto import algos, tsp
from fastapi import Request, Response

from signer.errors import UsageError
from signer.service.dependencies import runtime
from signer.service.tsa import TimestampRequestError

QUERY_MEDIA_TYPE = "application/timestamp-query"
JSON_MEDIA_TYPE = "application/json"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
REPLY_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {REPLY_MEDIA_TYPE: {}}, "description": "RFC 3161 TimeStampResp"}}
_JSON_HASHES = {"sha256", "sha384", "sha512"}


async def reply(request: Request) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type == QUERY_MEDIA_TYPE:
        request_der = await request.body()
    elif media_type == JSON_MEDIA_TYPE:
        request_der = json_request(await request.body())
    else:
        raise UsageError(f"The timestamp endpoint takes '{QUERY_MEDIA_TYPE}' (or "
                         f"timestamp-authority's JSON request as '{JSON_MEDIA_TYPE}').",
                         "Send the DER TimeStampReq with that Content-Type.")
    try:
        answer = runtime(request).service.tsa.respond(request_der)
    except TimestampRequestError as exc:
        raise UsageError(str(exc), "Send a DER TimeStampReq, e.g. from 'openssl ts "
                                   "-query -data FILE -sha256 -cert'.") from exc
    return Response(answer, media_type=REPLY_MEDIA_TYPE)


def json_request(body: bytes) -> bytes:
    """timestamp-authority's ``{artifactHash, hashAlgorithm, nonce?, certificates?}`` as
    the DER TimeStampReq it stands for; the TSA then decides as for any request."""
    fix = 'Send {"artifactHash": "<base64 digest>", "hashAlgorithm": "sha256"}.'
    try:
        data = json.loads(body)
        digest = base64.b64decode(data["artifactHash"], validate=True)
        algorithm = data.get("hashAlgorithm", "sha256")
        nonce, certificates = data.get("nonce"), data.get("certificates", True)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise UsageError("The JSON timestamp request is malformed.", fix) from exc
    if algorithm not in _JSON_HASHES or not isinstance(certificates, bool) or (
            nonce is not None and (not isinstance(nonce, int) or nonce < 0 or nonce >= 2**64)):
        raise UsageError("The JSON timestamp request has an unknown hashAlgorithm or a bad "
                         "nonce or certificates field.", fix)
    message: dict[str, Any] = {
        "version": "v1", "cert_req": certificates,
        "message_imprint": {"hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                            "hashed_message": digest}}
    if nonce is not None:
        message["nonce"] = nonce
    return bytes(tsp.TimeStampReq(message).dump())
