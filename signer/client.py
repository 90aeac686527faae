"""HTTP client of the service API. Retries on 5xx and timeouts only; requests are idempotent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from signer.errors import SignerError, Unavailable, from_status

DEFAULT_API = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 30
class _Retry(Retry):
    # urllib3 would also retry a 413 or 429 that carries Retry-After; we retry 503 only.
    RETRY_AFTER_STATUS_CODES = frozenset({503})


RETRY = _Retry(
    total=4, connect=4, read=2, status=4, backoff_factor=0.5,
    status_forcelist=(500, 502, 503, 504),
    # POSTs are safe to retry: a signature upload is idempotent, a certificate is just reissued.
    allowed_methods=None, respect_retry_after_header=True, raise_on_status=False,
)


class Client:
    def __init__(self, api: str = DEFAULT_API, token: str | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.api = api.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=RETRY, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, path: str, json: Any = None,
                params: Mapping[str, Any] | None = None, authenticated: bool = True,
                raw: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if authenticated:
            if not self._token:
                raise SignerError("No credentials given.",
                                  "Pass --api-key (SIGNER_API_KEY) or "
                                  "--enable-github-action-token.")
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self.session.request(method, self.api + path, json=json, params=params,
                                            headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"The signer service at {self.api} cannot be reached "
                              f"({exc.__class__.__name__}).",
                              "Check --api (SIGNER_API) and that the service is running.") from exc
        if response.status_code >= 400:
            raise from_status(response.status_code, _detail(response))
        if raw:
            return response.content
        return response.json() if response.content else None

    # -- API ----------------------------------------------------------------------------------
    def issue_certificate(self, namespace: str, csr_pem: str, provenance: Mapping[str, str]
                          ) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/certificates", json={
            "namespace": namespace, "csr": csr_pem, "provenance": dict(provenance)}))

    def submit_signature(self, namespace: str, name: str, certificate_pem: str,
                         signature_b64: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/signatures", json={
            "namespace": namespace, "name": name, "certificate": certificate_pem,
            "signature": signature_b64}))

    def sign(self, namespace: str, name: str, csr_pem: str, signature_b64: str,
             provenance: Mapping[str, str]) -> dict[str, Any]:
        """One request per signing: certificate, timestamp and log entry (POST /v1/sign)."""
        return dict(self.request("POST", "/v1/sign", json={
            "namespace": namespace, "name": name, "csr": csr_pem, "signature": signature_b64,
            "provenance": dict(provenance)}))

    def provenance(self, namespace: str) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/provenance", params={"namespace": namespace}))

    def submit_attestation(self, namespace: str, name: str, certificate_pem: str,
                           envelope_json: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/attestations", json={
            "namespace": namespace, "name": name, "certificate": certificate_pem,
            "envelope": envelope_json}))

    def attestations(self, namespace: str, name: str, predicate_type: str | None = None
                     ) -> list[dict[str, Any]]:
        params = {"namespace": namespace, "name": name}
        if predicate_type:
            params["predicate_type"] = predicate_type
        return list(self.request("GET", "/v1/attestations", params=params)["attestations"])

    def entries(self, namespace: str, name: str) -> list[dict[str, Any]]:
        body = self.request("GET", "/v1/entries", params={"namespace": namespace, "name": name})
        return list(body["entries"])

    def revoke(self, namespace: str, name: str, ref: str, reason: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/revocations", json={
            "namespace": namespace, "name": name, "source_repository_ref": ref,
            "reason": reason}))

    def list_signatures(self, namespace: str, name_prefix: str = "", limit: int = 100
                        ) -> list[dict[str, Any]]:
        body = self.request("GET", "/v1/signatures", params={
            "namespace": namespace, "name_prefix": name_prefix, "limit": limit})
        return list(body["signatures"])

    def show_signature(self, namespace: str, signature_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/signatures/{signature_id}",
                                 params={"namespace": namespace}))

    def trust_root(self) -> bytes:
        return bytes(self.request("GET", "/v1/trust-root", authenticated=False, raw=True))

    def trust_config(self, namespace: str | None = None) -> bytes:
        params = {"namespace": namespace} if namespace else None
        return bytes(self.request("GET", "/v1/trust-config", params=params,
                                  authenticated=False, raw=True))

    def log_info(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/v1/log", authenticated=False))

    def tile_checkpoint(self) -> str:
        """The Rekor v2 log's C2SP checkpoint (a signed note)."""
        return bytes(self.request("GET", "/api/v2/checkpoint", authenticated=False,
                                  raw=True)).decode()

    def tile(self, path: str) -> bytes:
        """A C2SP tile or entry bundle of the Rekor v2 log: ``tile/<L>/<N>[.p/<W>]``."""
        return bytes(self.request("GET", f"/api/v2/{path}", authenticated=False, raw=True))

    def log_consistency(self, first: int, last: int) -> list[str]:
        body = self.request("GET", "/api/v1/log/proof", authenticated=False,
                            params={"firstSize": first, "lastSize": last})
        return list(body["hashes"])


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body.get("title"))
    except ValueError:
        return f"The service answered {response.status_code} {response.reason}."
