"""Fulcio's API, so that Sigstore's clients get their certificates from signer's CA.

``POST /api/v2/signingCert`` takes either body Fulcio's clients send: a CSR
(sigstore-python) or a public key with a proof of possession (sigstore-go, cosign,
sigstore-js). The token must be for the Sigstore audience (``--sigstore-audience``). The
certificate is the one ``POST /v1/certificates`` issues: same profile, same provenance, same
policies (`SigningService.issue_certificate`).

The namespace is the URL's (``/ns/<namespace>/api/v2/signingCert``). At the root it is the
one namespace whose policies let the token sign: sigstore-python joins ``/api/v2/…`` to the
CA URL as an absolute path, so it always calls the root, whatever the signing config says.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from signer.errors import PermissionDenied, UsageError
from signer.service import ca, limits
from signer.service.auth import Principal
from signer.service.dependencies import RuntimeDep
from signer.service.models import PEM_MAX
from signer.service.runtime import Runtime
from signer.service.signing import check_namespace

PEM_CHAIN_MEDIA_TYPE = "application/pem-certificate-chain"
CHALLENGE_CLAIM = "sub"  # what the proof of possession signs: the certificate's identity


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Credentials(_Wire):
    oidc_identity_token: str | None = Field(default=None, alias="oidcIdentityToken",
                                            max_length=16 * 1024)


class PublicKey(_Wire):
    algorithm: str = Field(default="", max_length=32)
    content: str = Field(max_length=PEM_MAX, description="PEM SubjectPublicKeyInfo")


class PublicKeyRequest(_Wire):
    public_key: PublicKey = Field(alias="publicKey")
    proof_of_possession: str = Field(alias="proofOfPossession", max_length=1024,
                                     description="base64 signature over the token's 'sub'")


class SigningCertRequest(_Wire):
    """Fulcio v2 ``CreateSigningCertificateRequest`` (protobuf JSON): one of the two keys."""

    credentials: Credentials | None = None
    public_key_request: PublicKeyRequest | None = Field(default=None, alias="publicKeyRequest")
    certificate_signing_request: str | None = Field(
        default=None, alias="certificateSigningRequest", max_length=2 * PEM_MAX,
        description="base64 of the PEM CSR")


def url_namespace(request: Request) -> str | None:
    """The namespace a ``/ns/<namespace>/…`` URL names; None at the root."""
    namespace = request.path_params.get("namespace")
    return None if namespace is None else check_namespace(namespace)


def _sigstore_principal(rt: Runtime, request: Request, authorization: str | None,
                        body: SigningCertRequest) -> Principal:
    if not authorization and body.credentials and body.credentials.oidc_identity_token:
        authorization = "Bearer " + body.credentials.oidc_identity_token
    principal = rt.auth.authenticate(authorization, rt.settings.sigstore_audience)
    limits.check(request, principal)
    return principal


def _signing_namespace(rt: Runtime, principal: Principal, named: str | None) -> str:
    if named is not None:
        return named  # issue_certificate authorizes it
    candidates = {p.namespace for p in rt.auth.policies()}
    if principal.api_key is not None and principal.api_key.namespace:
        candidates.add(principal.api_key.namespace)
    namespaces = sorted(n for n in candidates if "sign" in rt.auth.permissions(principal, n))
    if len(namespaces) == 1:
        return namespaces[0]
    base = rt.settings.url
    if not namespaces:
        raise PermissionDenied(
            f"{principal.identity} may sign in no namespace.",
            "A namespace admin must add a policy for this token's issuer and claims "
            "('signer policy add').")
    raise UsageError(
        f"{principal.identity} may sign in several namespaces ({', '.join(namespaces)}), and "
        "this URL names none.",
        f"Use the namespace's URL, e.g. {base}/ns/{namespaces[0]}/api/v2/signingCert (its "
        f"client config: GET {base}/v1/trust-config?namespace={namespaces[0]}).")


def _key(body: SigningCertRequest, principal: Principal) -> Any:
    """The key to certify, from whichever proof the client sent."""
    if (body.certificate_signing_request is None) == (body.public_key_request is None):
        raise UsageError("The request holds neither or both of certificateSigningRequest and "
                         "publicKeyRequest.", "Send exactly one of them.")
    if body.certificate_signing_request is not None:
        try:
            pem = base64.b64decode(body.certificate_signing_request, validate=True).decode()
        except (binascii.Error, ValueError) as exc:
            raise UsageError("certificateSigningRequest is not base64 of a PEM CSR.",
                             "Send base64(PEM PKCS#10 request).") from exc
        return ca.parse_csr(pem, sigstore_client=True).public_key()
    assert body.public_key_request is not None
    try:
        proof = base64.b64decode(body.public_key_request.proof_of_possession, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError("publicKeyRequest.proofOfPossession is not base64.") from exc
    return ca.key_from_proof(body.public_key_request.public_key.content, proof,
                             principal.identity)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def routes(prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix, tags=["sigstore: fulcio"])

    @api.post("/api/v2/signingCert", status_code=201)
    def signing_cert(body: SigningCertRequest, request: Request, rt: RuntimeDep,
                     authorization: Annotated[str | None, Header()] = None
                     ) -> dict[str, Any]:
        principal = _sigstore_principal(rt, request, authorization, body)
        namespace = _signing_namespace(rt, principal, url_namespace(request))
        rt.auth.authorize(principal, namespace, "sign")  # before any key is parsed
        issued = rt.service.issue_certificate(principal, namespace, _key(body, principal), {})
        return {"signedCertificateEmbeddedSct": {
            "chain": {"certificates": [_pem(c) for c in issued.chain]}}}

    @api.get("/api/v2/trustBundle")
    def trust_bundle(request: Request, rt: RuntimeDep) -> dict[str, Any]:
        url_namespace(request)
        return {"chains": [{"certificates": [_pem(c) for c in authority.chain]}
                           for authority in rt.trust.cas]}

    @api.get("/api/v2/configuration")
    def configuration(request: Request, rt: RuntimeDep) -> dict[str, Any]:
        # Every issuer some policy names (which namespace's is not said: names do not leak).
        url_namespace(request)
        issuers = sorted({p.issuer for p in rt.auth.policies()})
        return {"issuers": [{"issuerUrl": url, "audience": rt.settings.sigstore_audience,
                             "challengeClaim": CHALLENGE_CLAIM} for url in issuers]}

    @api.get("/api/v1/rootCert", response_class=Response,
             responses={200: {"content": {PEM_CHAIN_MEDIA_TYPE: {}}}})
    def root_cert(request: Request, rt: RuntimeDep) -> Response:
        url_namespace(request)
        return Response("".join(_pem(c) for c in rt.service.ca.chain),
                        media_type=PEM_CHAIN_MEDIA_TYPE)

    return api
