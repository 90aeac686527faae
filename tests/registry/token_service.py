"""The token service of a distribution registry in ``auth: token`` mode, over real HTTP.

Docker Hub, ghcr.io and Harbor put such a service beside the registry: the registry answers
401 with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``, the client presents its
credentials to the realm and gets a JWT for the scope, which the real registry verifies
against ``rootcertbundle``. This one issues ES256 tokens with the certificate in ``x5c``,
for one user with a password (basic auth) or a refresh token (``identitytoken``).
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ISSUER = "signer-test-token-service"
SERVICE = "signer-test-registry"


class TokenService:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.refresh_token = secrets.token_urlsafe(24)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, scope: str) -> str:
        access = []
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name:
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": self.user, "aud": SERVICE, "iat": now, "nbf": now - 5,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "access": access}
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": x5c})


def _handler(svc: TokenService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            svc.requests.append("GET")
            expected = base64.b64encode(f"{svc.user}:{svc.password}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._answer(401, {"details": "bad credentials"})
                return
            self._answer(200, {"token": svc.token(query.get("scope", [""])[0])})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            svc.requests.append("POST")
            if form.get("grant_type") != ["refresh_token"] \
                    or form.get("refresh_token") != [svc.refresh_token]:
                self._answer(401, {"details": "bad refresh token"})
                return
            self._answer(200, {"access_token": svc.token(form.get("scope", [""])[0])})

    return Handler
