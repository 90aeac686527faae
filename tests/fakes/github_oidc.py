"""A stand-in for GitHub's OIDC issuer and the runner's token endpoint, over real HTTP.

It serves ``/.well-known/openid-configuration`` and a JWKS, signs RS256 tokens with every
claim a real GitHub Actions token carries, and answers the runner's token request
(``ACTIONS_ID_TOKEN_REQUEST_URL``) only for the right bearer. Run it standalone with
``python -m tests.fakes.github_oidc`` to use it from a shell or from ``act``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class FakeGitHubIssuer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runner_secret = secrets.token_urlsafe(24)
        self.runner_claims: dict[str, Any] = {}
        self.runner_allowed = True
        self.jwks_down = False
        self.requests: list[str] = []
        self.rotate_key()
        handler = _handler(self)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def rotate_key(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- tokens -------------------------------------------------------------------------------
    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A GitHub Actions token's claims for acme/app at refs/tags/v1.2.3, overridable."""
        now = int(time.time())
        # An override of None drops the claim (a GitLab-shaped token has no 'repository').
        repo = overrides.get("repository") or "acme/app"
        owner = overrides.get("repository_owner") or repo.split("/")[0]
        ref = overrides.get("ref", "refs/tags/v1.2.3")
        sha = overrides.get("sha", "2f0c9b6a3d1e4f5a6b7c8d9e0f1a2b3c4d5e6f70")
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{repo}:ref:{ref}",
            "aud": "signer",
            "ref": ref,
            "sha": sha,
            "repository": repo,
            "repository_owner": owner,
            "repository_owner_id": "1234567",
            "repository_visibility": "private",
            "repository_id": "7654321",
            "user_email": None,
            "run_id": "9876543210",
            "run_number": "42",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor_id": "1111",
            "actor": "octocat",
            "workflow": "release",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_protected": "true",
            "ref_type": "tag",
            "workflow_ref": f"{repo}/.github/workflows/release.yml@{ref}",
            "workflow_sha": sha,
            "job_workflow_ref": f"{repo}/.github/workflows/release.yml@{ref}",
            "job_workflow_sha": sha,
            "check_run_id": "22222",
            "iss": self.url,
            "nbf": now - 5,
            "exp": now + 300,
            "iat": now - 5,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), self.key, algorithm="RS256",
                          headers={"kid": self.kid})

    def runner_env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/runner/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.runner_secret,
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}


def _handler(issuer: FakeGitHubIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(parts.path)
            if parts.path == "/.well-known/openid-configuration":
                self._send(200, {
                    "issuer": issuer.url, "jwks_uri": f"{issuer.url}/.well-known/jwks",
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": sorted(issuer.claims()),
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid"],
                })
            elif parts.path == "/.well-known/jwks":
                if issuer.jwks_down:
                    self._send(503, {"message": "unavailable"})
                else:
                    self._send(200, issuer.jwks())
            elif parts.path == "/runner/token":
                auth = self.headers.get("Authorization", "")
                if not issuer.runner_allowed or auth != f"bearer {issuer.runner_secret}":
                    self._send(403, {"message": "Unable to get ACTIONS_ID_TOKEN_REQUEST_URL"})
                    return
                audience = parse_qs(parts.query).get("audience", ["signer"])[0]
                self._send(200, {"value": issuer.token(aud=audience, **issuer.runner_claims)})
            else:
                self._send(404, {"message": "not found"})

    return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    fake = FakeGitHubIssuer(args.host, args.port)
    print(json.dumps({"issuer": fake.url, **fake.runner_env()}), flush=True)
    try:
        fake.thread.join()
    except KeyboardInterrupt:
        fake.stop()
