"""An HTTP client of one repository in an OCI distribution registry (requests).

Auth follows the distribution spec: a request answered 401 carries a challenge; ``Bearer``
sends the credentials to the token realm for a token scoped to this repository, ``Basic``
sends them to the registry. Secrets live in this object's memory only: they are never in
an error message, a log line or a URL.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urljoin

import requests

from signer.errors import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    RateLimited,
    SignerError,
    Unavailable,
    UsageError,
)
from signer.registry import credentials as creds
from signer.registry.oci import MANIFEST_TYPES, MAX_MANIFEST_BYTES, Descriptor, sha256_digest
from signer.registry.reference import INSECURE_ENV, ImageRef, insecure_allowed

TIMEOUT = 30.0  # seconds per request
USER_AGENT = "signer-registry-client"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_LOOKUP = object()


class RegistryClient:
    """One repository: manifests, blobs, referrers, with the user's credentials."""

    def __init__(self, image: ImageRef, *, push: bool = False,
                 allow_insecure: bool | None = None, credentials: Any = _LOOKUP,
                 session: requests.Session | None = None, timeout: float = TIMEOUT) -> None:
        self.image = image
        self.push = push
        self.timeout = timeout
        self._insecure = insecure_allowed(image, allow_insecure)
        self._credentials: creds.Credentials | None = (
            creds.lookup(image.registry) if credentials is _LOOKUP else credentials)
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._base: str | None = None
        self._authorization: str | None = None

    def __repr__(self) -> str:
        return f"RegistryClient({self.image.registry}/{self.image.repository})"

    @property
    def where(self) -> str:
        return f"{self.image.registry}/{self.image.repository}"

    # -- manifests ----------------------------------------------------------------------------
    def manifest_descriptor(self, reference: str) -> Descriptor | None:
        """Media type, digest and size of a manifest as the registry serves it (HEAD)."""
        resp = self._request("HEAD", f"manifests/{reference}",
                             headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if resp.status_code == 404:
            return None
        self._check(resp, f"read the manifest {reference}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = resp.headers.get("Docker-Content-Digest")
        length = resp.headers.get("Content-Length")
        if media_type in MANIFEST_TYPES and digest and length and length.isdigit():
            if reference.startswith("sha256:") and digest != reference:
                raise UsageError(f"{self.where} answered the manifest {reference} with the "
                                 f"digest {digest}.", "Check the registry (or a proxy before it).")
            return Descriptor(media_type, digest, int(length))
        got = self.get_manifest(reference)  # a HEAD without the headers: read the body
        return None if got is None else Descriptor.of(got[0], got[1])

    def get_manifest(self, reference: str) -> tuple[str, bytes] | None:
        """(media type, bytes); None when there is no such manifest. A manifest asked for by
        digest is checked against it."""
        resp = self._request("GET", f"manifests/{reference}", stream=True,
                             headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if resp.status_code == 404:
            resp.close()
            return None
        self._check(resp, f"read the manifest {reference}")
        body = _read_limited(resp, MAX_MANIFEST_BYTES, f"the manifest {reference}")
        if reference.startswith("sha256:") and sha256_digest(body) != reference:
            raise UsageError(f"{self.where} served content for {reference} that does not "
                             "hash to it.", "The registry is broken or tampered with.")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return media_type, body

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> requests.Response:
        resp = self._request("PUT", f"manifests/{reference}", data=body,
                             headers={"Content-Type": media_type})
        self._check(resp, f"push the manifest {reference}", media_type)
        return resp

    # -- blobs --------------------------------------------------------------------------------
    def push_blob(self, data: bytes) -> str:
        """Upload a blob (monolithic POST + PUT) unless the registry has it; its digest."""
        digest = sha256_digest(data)
        head = self._request("HEAD", f"blobs/{digest}")
        if head.status_code == 200:
            return digest
        started = self._request("POST", "blobs/uploads/")
        self._check(started, "start a blob upload")
        location = started.headers.get("Location")
        if not location:
            raise Unavailable(f"{self.where} started an upload without a Location.",
                              "Check the registry.")
        url = urljoin(self._url(""), location)
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        done = self._request("PUT", url, data=data,
                             headers={"Content-Type": "application/octet-stream"})
        self._check(done, "upload a blob")
        return digest

    def get_blob(self, digest: str, max_bytes: int) -> bytes:
        resp = self._request("GET", f"blobs/{digest}", stream=True)
        self._check(resp, f"read the blob {digest}")
        body = _read_limited(resp, max_bytes, f"the blob {digest}")
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or hashlib.sha256(body).hexdigest() != hexdigest:
            raise UsageError(f"{self.where} served a blob that does not hash to {digest}.",
                             "The registry is broken or tampered with.")
        return body

    # -- referrers ----------------------------------------------------------------------------
    def referrers(self, digest: str) -> bytes | None:
        """The referrers API's index, or None when the registry does not serve the API."""
        resp = self._request("GET", f"referrers/{digest}", headers={"Accept": MANIFEST_TYPES[1]})
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if resp.status_code == 200 and content_type == MANIFEST_TYPES[1]:
            return resp.content[:MAX_MANIFEST_BYTES]
        if resp.status_code in (200, 400, 404, 405, 501):
            return None  # no such route: fall back to the tag schema
        self._check(resp, "list referrers")
        return None

    # -- HTTP and auth ------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if self._base is None:
            self._base = self._probe()
        if path.startswith(("https://", "http://")):
            return path
        return f"{self._base}/v2/{self.image.repository}/{path}"

    def _probe(self) -> str:
        """https, and plain http only where it is allowed (loopback, or explicitly)."""
        host = self.image.api_host
        try:
            self._session.get(f"https://{host}/v2/", timeout=self.timeout)
            return f"https://{host}"
        except requests.exceptions.SSLError as exc:
            if not self._insecure:
                raise UsageError(
                    f"The registry {host} does not answer over TLS ({_reason(exc)}); signer "
                    "speaks plain http only to loopback registries.",
                    "Use the registry's https address; or, for a registry on a network you "
                    f"trust, pass --allow-insecure-registry (or {INSECURE_ENV}=1).") from None
        except requests.RequestException as exc:
            if not self._insecure:
                raise Unavailable(f"The registry {host} cannot be reached ({_reason(exc)}).",
                                  "Check the name and the network.") from None
        try:
            self._session.get(f"http://{host}/v2/", timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"The registry {host} cannot be reached over https or http "
                              f"({_reason(exc)}).", "Check the name, the port and that it "
                              "runs.") from None
        return f"http://{host}"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self._url(path)
        headers = dict(kwargs.pop("headers", {}))
        same_host = url.startswith(f"{self._base}/")  # an upload Location may name another
        for attempt in range(2):
            if self._authorization and same_host:
                headers["Authorization"] = self._authorization
            try:
                resp = self._session.request(method, url, headers=headers, timeout=self.timeout,
                                             **kwargs)
            except requests.RequestException as exc:
                raise Unavailable(f"The registry {self.image.registry} did not answer "
                                  f"{method} ({_reason(exc)}).", "Try again later.") from None
            if resp.status_code != 401 or attempt:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self._authorize(challenge)
        raise AssertionError("unreachable")

    def _scope(self) -> str:
        return f"repository:{self.image.repository}:{'pull,push' if self.push else 'pull'}"

    def _authorize(self, challenge: str) -> None:
        scheme, _, rest = challenge.strip().partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        credentials = self._credentials
        if scheme.lower() == "basic":
            if credentials is None or credentials.identity_token:
                raise self._no_credentials()
            self._authorization = _basic(credentials)
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise AuthenticationError(f"{self.where} asks for authentication signer does not "
                                      f"speak ({scheme[:20] or 'no challenge'}).",
                                      "Use a registry with the distribution token flow or "
                                      "basic auth.")
        realm = params["realm"]
        if not realm.startswith("https://") and not (self._insecure
                                                       and realm.startswith("http://")):
            raise UsageError(f"{self.where} sends credentials' token realm to plain http "
                             f"({realm[:80]}).", "Use the registry's https address.")
        query = {"scope": self._scope(), **({"service": params["service"]}
                                             if "service" in params else {})}
        try:
            if credentials is not None and credentials.identity_token:
                got = self._session.post(realm, timeout=self.timeout, data={
                    **query, "grant_type": "refresh_token", "client_id": USER_AGENT,
                    "refresh_token": credentials.identity_token})
            else:
                headers = {"Authorization": _basic(credentials)} if credentials else {}
                got = self._session.get(realm, params=query, headers=headers,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"The token service of {self.image.registry} did not answer "
                              f"({_reason(exc)}).", "Try again later.") from None
        if got.status_code in (401, 403):
            raise self._refused() if credentials else self._no_credentials()
        try:
            body = got.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if got.status_code != 200 or not isinstance(token, str) or not token:
            raise Unavailable(f"The token service of {self.image.registry} answered "
                              f"{got.status_code} without a token.", "Try again later.")
        self._authorization = f"Bearer {token}"

    def _no_credentials(self) -> AuthenticationError:
        return AuthenticationError(
            f"{self.where} needs credentials, and signer found none for "
            f"{self.image.registry}.",
            f"Log in with 'docker login {self.image.registry}' (signer reads "
            f"{creds.docker_config_path()} and its credential helpers), or set "
            "SIGNER_REGISTRY_USERNAME and SIGNER_REGISTRY_PASSWORD"
            + (" (or GITHUB_TOKEN)" if self.image.registry == creds.GHCR else "") + ".")

    def _refused(self) -> AuthenticationError:
        source = self._credentials.source if self._credentials else "none"
        return AuthenticationError(
            f"{self.image.registry} refused the credentials for {self.image.repository} "
            f"(401; from {source}).",
            f"Log in again with 'docker login {self.image.registry}', or fix the password "
            "or token where it came from.")

    def _check(self, resp: requests.Response, action: str, media_type: str = "") -> None:
        status = resp.status_code
        if status < 300:
            return
        code, message = _registry_error(resp)
        said = f" ({code}: {message})" if code else ""
        if status == 401:
            raise self._refused() if self._credentials else self._no_credentials()
        if status == 403:
            raise PermissionDenied(
                f"{self.image.registry} denied signer to {action} in "
                f"{self.image.repository} (403){said}.",
                "Give these credentials " + ("push" if self.push else "pull") + " access to "
                "the repository (on GitHub: 'permissions: packages: write' for the job).")
        if status == 404:
            raise NotFound(f"{self.where} has no such thing: could not {action} (404){said}.",
                           "Check the registry, repository and digest; push the image first.")
        if status == 429:
            raise RateLimited(f"{self.image.registry} rate-limits signer (429).",
                              "Wait and try again, or authenticate for a higher limit.")
        if status >= 500:
            raise Unavailable(f"{self.image.registry} failed to {action} ({status}){said}.",
                              "Try again later.")
        if status == 415 or code in ("MANIFEST_INVALID", "UNSUPPORTED", "MANIFEST_UNKNOWN"):
            raise UsageError(
                f"{self.image.registry} refused to {action}{said or f' ({status})'}"
                + (f": it does not accept {media_type}" if media_type else "") + ".",
                "The registry must accept OCI 1.1 image manifests with artifactType and "
                "subject (distribution 2.8+, ghcr.io, Docker Hub, Harbor 2.8+, zot).")
        raise SignerError(f"{self.image.registry} refused to {action} ({status}){said}.",
                          "Check the registry's logs.")


def _basic(credentials: creds.Credentials) -> str:
    import base64

    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _registry_error(resp: requests.Response) -> tuple[str, str]:
    try:
        first = resp.json()["errors"][0]
        return str(first.get("code", ""))[:40], str(first.get("message", ""))[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", ""


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    for chunk in resp.iter_content(64 * 1024):
        total += len(chunk)
        if total > limit:
            resp.close()
            raise UsageError(f"{what} is larger than {limit} bytes.",
                             "Only bundles and manifests are read from the registry.")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: Exception) -> str:
    """The kind of network failure, without URLs or headers."""
    return type(exc).__name__
