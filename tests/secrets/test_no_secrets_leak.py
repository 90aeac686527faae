"""Secrets never reach a log or an output: the main flows at --log-level debug, then a scan.

The service runs at debug level (uvicorn's access log on) with an encrypted CA; the CLI
signs with an API key and with a GitHub Actions token (through the runner's token
endpoint), verifies online and offline, lists, shows, revokes; a browser signs in to the
page; refused credentials are tried too. Then every file written (the service log, every
command's stdout and stderr, bundles, the trust root, the audit log) and the database itself are scanned
for each API key and its secret, each OIDC token and its signature, the runner's bearer
token, the page's session cookie, the CA passphrase and the private keys (PEM lines, DER,
scalar). The two places that show a key once by design (the stdout of ``server init`` and
of ``api-key create``) are the only exceptions, and they are checked to hold nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from signer.service.store import Store
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.service_process import SIGNER, Service, clean_env, database

pytestmark = [pytest.mark.integration]

PASSPHRASE = "correct horse battery staple 6f1d"


class RecordingIssuer(FakeGitHubIssuer):
    """The fake GitHub issuer, remembering every token it mints (to look for them later)."""

    def __init__(self) -> None:
        self.minted: list[str] = []
        super().__init__()

    def token(self, **overrides):  # type: ignore[no-untyped-def]
        minted = super().token(**overrides)
        self.minted.append(minted)
        return minted


@pytest.fixture
def recording_issuer() -> Iterator[RecordingIssuer]:
    fake = RecordingIssuer()
    yield fake
    fake.stop()


class Outputs:
    """Every output of the run, as files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0
        self.shown_once: set[Path] = set()

    def run(self, args: list[str], env: dict[str, str], shows_a_key: bool = False
            ) -> subprocess.CompletedProcess[str]:
        self.n += 1
        done = subprocess.run([SIGNER, *args], capture_output=True, text=True, timeout=120,
                              env=clean_env(**env), cwd=self.root)
        stem = self.root / f"{self.n:02d}-{args[0]}-{args[1] if len(args) > 1 else ''}"
        stem.with_suffix(".stdout").write_text(done.stdout)
        stem.with_suffix(".stderr").write_text(done.stderr)
        if shows_a_key:
            self.shown_once.add(stem.with_suffix(".stdout"))
        return done


def _key_material(data_dir: Path) -> list[str]:
    """Strings that would betray a private key: its encrypted PEM lines, the lines and the
    base64 span of its unencrypted PKCS#8 that hold the scalar, and the scalar in hex and
    base64. (The last PKCS#8 line holds the public key, which is public: not a needle.)"""
    needles = []
    for path in sorted((data_dir / "keys").glob("*.key")):
        needles += [line for line in path.read_text().splitlines()
                    if len(line) >= 40 and not line.startswith("-----")]
        key = serialization.load_pem_private_key(path.read_bytes(), PASSPHRASE.encode())
        scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
        der = key.private_bytes(serialization.Encoding.DER,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        b64 = base64.b64encode(der).decode()
        at = der.find(scalar)
        assert at > 0
        needles.append(b64[-(-at // 3) * 4:(at + 32) // 3 * 4])
        plain = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode().splitlines()
        needles += plain[1:3]
        needles += [scalar.hex(), base64.b64encode(scalar).decode()[:40]]
    return needles


def _secrets_of(token: str) -> list[str]:
    """A credential and the part of it that is secret on its own."""
    if token.startswith("sgk_"):
        return [token, token.split("_", 2)[2]]
    parts = token.split(".")
    return [token, parts[-1]] if len(parts) == 3 and len(parts[-1]) > 20 else [token]


def test_flows_at_debug_level_leak_no_secret(recording_issuer: RecordingIssuer, backend: str,
                                             tmp_path: Path) -> None:
    issuer = recording_issuer
    out = Outputs(tmp_path / "out")
    out.root.mkdir()
    data = tmp_path / "data"
    audit_log = out.root / "audit.jsonl"  # scanned with the other outputs
    audited = ["--audit-log", str(audit_log)]
    with database(backend) as url:
        db = ["--database-url", url] if url else []
        init = out.run(["server", "init", "--data-dir", str(data), *db, *audited],
                       {"SIGNER_CA_PASSPHRASE": PASSPHRASE}, shows_a_key=True)
        assert init.returncode == 0, init.stderr
        admin_key = init.stdout.strip()
        svc = Service(data, admin_key, issuer.url, database_url=url,
                      extra_args=["--log-level", "debug", *audited],
                      env={"SIGNER_CA_PASSPHRASE": PASSPHRASE})
        svc.start()
        try:
            secrets = _run_flows(svc, issuer, out, admin_key)
        finally:
            svc.stop()
        rotated = out.run(["server", "rotate-key", "ca", "--data-dir", str(data), *db,
                           *audited], {"SIGNER_CA_PASSPHRASE": PASSPHRASE})
        assert rotated.returncode == 0, rotated.stderr
        stored = _database_text(svc, backend)
    secrets += [admin_key, PASSPHRASE, issuer.runner_secret, *_key_material(data)]
    needles = sorted({s for token in secrets for s in _secrets_of(token)}, key=len)
    assert len(needles) > 20

    files = [svc.log_path, *sorted(p for p in tmp_path.rglob("*") if p.is_file()
                                   and "data" not in p.relative_to(tmp_path).parts[:1])]
    assert svc.log_path.stat().st_size > 1000, "the debug log is unexpectedly empty"
    assert "GET /v1/signatures" in svc.log_path.read_text(), "no access log at debug level"
    events = [json.loads(line)["event"] for line in audit_log.read_text().splitlines()]
    assert {"certificate_issued", "entry_stored", "revoked", "refused", "admin_change",
            "key_rotated"} <= set(events), events
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        allowed = set()
        if path in out.shown_once:  # the one key this output exists to show
            allowed = set(_secrets_of(text.strip()))
            assert re.fullmatch(r"sgk_[0-9a-f]+_[A-Za-z0-9_-]+", text.strip()), text
        leaks += [f"{path.name}: {n}" for n in needles if n in text and n not in allowed]
    leaks += [f"database: {n[:12]}…" for n in needles if n in stored]
    assert leaks == [], "\n".join(leaks)


def _run_flows(svc: Service, issuer: RecordingIssuer, out: Outputs, admin_key: str
               ) -> list[str]:
    api = {"SIGNER_API": svc.url}
    admin = {**api, "SIGNER_API_KEY": admin_key}
    svc.admin().request("POST", "/v1/namespaces", json={"name": "leaky"})
    svc.admin().request("POST", "/v1/namespaces/leaky/policies", json={
        "issuer": issuer.url, "claims": {"repository_owner": "acme"},
        "permissions": ["sign", "verify", "revoke"]})
    made = out.run(["api-key", "create", "--namespace", "leaky", "--name", "ci",
                    "--permissions", "sign,verify,revoke"], admin, shows_a_key=True)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    user = {**api, "SIGNER_API_KEY": key, "SIGNER_NAMESPACE": "leaky"}
    runner = {**api, **issuer.runner_env(), "SIGNER_NAMESPACE": "leaky"}
    digest = hashlib.sha256(b"leaky").hexdigest()
    name = f"ghcr.io/acme/leaky@sha256:{digest}"

    with ThreadPoolExecutor(3) as pool:
        signed, by_token, exported = pool.map(lambda c: out.run(*c), [
            (["artifact", "sign", "--name", name, "--source-repository-ref",
              "refs/heads/main", "--bundle", "key.sigstore.json"], user),
            (["artifact", "sign", "--name", name, "--enable-github-action-token",
              "--bundle", "token.sigstore.json", "--output", "json"], runner),
            (["trust-root", "export", "--out", "root.json"], api)])
    assert signed.returncode == 0, signed.stderr
    assert by_token.returncode == 0, by_token.stderr
    assert exported.returncode == 0, exported.stderr
    sig_id = signed.stdout.strip()
    bogus = f"sgk_{'0' * 16}_{'A' * 43}"
    expired = issuer.token(exp=1, iat=1, nbf=1)
    calls = [
        (["artifact", "verify", "--name", name, "--certificate-oidc-issuer", issuer.url,
          "--output", "json"], user),
        (["artifact", "verify", "--name", name, "--bundle", "token.sigstore.json",
          "--trust-root", "root.json", "--certificate-oidc-issuer", issuer.url], api),
        (["artifact", "list", "--output", "json"], user),
        (["artifact", "show", sig_id], user),
        (["api-key", "list", "--namespace", "leaky", "--output", "json"], admin),
        (["artifact", "list"], {**user, "SIGNER_API_KEY": bogus}),
        (["artifact", "list"], {**user, "SIGNER_API_KEY": expired}),
    ]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda c: out.run(*c), calls))
    assert [d.returncode for d in done] == [0, 0, 0, 0, 0, 3, 3], [d.stderr for d in done]
    revoked = out.run(["artifact", "revoke-signature", "--name", name,
                       "--source-repository-ref", "refs/heads/main", "--reason", "test"], user)
    assert revoked.returncode == 0, revoked.stderr

    # Raw requests the CLI would never send: a token in odd places.
    token = issuer.token()
    requests.post(f"{svc.url}/v1/certificates", timeout=30, json={
        "namespace": "leaky", "csr": token, "provenance": {"source_repository_ref": token}},
        headers={"Authorization": f"Bearer {token}"})
    requests.get(f"{svc.url}/v1/signatures", timeout=30,
                 params={"namespace": "leaky", "name_prefix": key[:40]},
                 headers={"Authorization": f"Bearer {key}"})
    requests.get(f"{svc.url}/v1/signatures", timeout=30, params={"namespace": "leaky"},
                 headers={"Authorization": "Bearer " + token[:-4] + "AAAA"})
    # The page: sign in with the key; the session cookie is a credential too.
    browser = requests.Session()
    form = browser.get(f"{svc.url}/ui/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    browser.post(f"{svc.url}/ui/sign-in", timeout=30, data={
        "api_key": key, "csrf_token": csrf.group(1), "next": "/ui/artifacts"})
    session_cookie = browser.cookies.get("signer_session")
    assert session_cookie
    assert browser.get(f"{svc.url}/ui/artifacts", timeout=30).status_code == 200
    browser.post(f"{svc.url}/ui/sign-in", timeout=30, data={
        "api_key": bogus, "csrf_token": "wrong", "next": "/ui/artifacts"})
    return [key, bogus, session_cookie, *issuer.minted]


def _database_text(svc: Service, backend: str) -> str:
    """Everything the database holds, as text (bytes columns as hex and base64 too)."""
    tables = (svc.sql("SELECT name FROM sqlite_master WHERE type = 'table'")
              if backend == "sqlite" else
              svc.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    chunks = []
    for (table,) in tables:
        for row in svc.sql(f'SELECT * FROM "{table}"'):
            for value in row:
                if isinstance(value, bytes | memoryview):
                    raw = bytes(value)
                    chunks += [raw.hex(), base64.b64encode(raw).decode(),
                               raw.decode("latin-1")]
                else:
                    chunks.append(json.dumps(value, default=str))
    return "\n".join(chunks)


def test_api_keys_are_compared_in_constant_time() -> None:
    """The one comparison of a presented secret with a stored one."""
    source = inspect.getsource(Store.check_api_key)
    assert "hmac.compare_digest(row.secret_hash" in source
    assert "secret_hash ==" not in source and "== row.secret_hash" not in source
