"""Every service key on a PKCS#11 token (SoftHSM2): init, start, sign, verify with ours and
sigstore-python, rotate, restart; the data directory never holds a private key; pkcs11-tool
sees the keys as non-extractable; the token pulled under load gives 503s with a detail and
then recovers, and no acknowledged signature is lost."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from signer.service.bootstrap import LOG_NAMES
from signer.service.tuf_repository import SERVICE_ROLES, root_key_path
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.interop.conftest import Signed
from tests.interop.test_own_verifier import our_verify
from tests.interop.test_sigstore_python import sigstore_verify
from tests.service_process import SIGNER, Service, Tenant, clean_env
from tests.softhsm import MODULE, PIN, SoftHSM, fresh_module, init_args

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    shutil.which("softhsm2-util") is None or shutil.which("pkcs11-tool") is None,
    reason="SoftHSM2 and OpenSC are installed by scripts/prereqs/40-hsm.sh")]

LABEL = "signer-test"
KINDS = ("ca", "tsa", "tlog", "ctlog")
# Every key the service signs with: the CA hierarchy, the TSA, the logs, TUF's online roles.
SERVICE_KEYS = {"root", "intermediate", "tsa", *LOG_NAMES, *(f"tuf-{r}" for r in SERVICE_ROLES)}


@dataclass
class Hsm:
    hsm: SoftHSM
    token_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def signer(self, *args: str, pin: str = PIN) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SIGNER, *args], capture_output=True, text=True, timeout=120,
                              env=clean_env(**self.hsm.env, SIGNER_PKCS11_PIN=pin))


@pytest.fixture
def token(tmp_path: Path) -> Hsm:
    hsm = SoftHSM.create(tmp_path / "softhsm")
    return Hsm(hsm, hsm.new_token(LABEL), {**hsm.env, "SIGNER_PKCS11_PIN": PIN})


def _init(token: Hsm, data: Path, *extra: str) -> str:
    done = token.signer("server", "init", "--data-dir", str(data), *init_args(LABEL), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def service(token: Hsm, issuer: FakeGitHubIssuer, tmp_path: Path) -> Iterator[Service]:
    data = tmp_path / "data"
    svc = Service(data, _init(token, data), issuer.url,
                  env={**token.env, "SIGNER_RATE_LIMIT": "0"})
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _sign(svc: Service, issuer: FakeGitHubIssuer, tenant: Tenant, work: Path, name: str
          ) -> Signed:
    work.mkdir(parents=True, exist_ok=True)
    artifact = work / f"{name}.txt"
    artifact.write_bytes(f"artifact {name}\n".encode())
    bundle = work / f"{name}.sigstore.json"
    done = svc.cli("artifact", "sign", "--file", str(artifact), "--enable-github-action-token",
                   "--bundle", str(bundle), "--output", "json", cwd=work,
                   env={**issuer.runner_env(), "SIGNER_NAMESPACE": tenant.namespace})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for args in (["--client-config", "--out", "trust_config.json"],
                 ["--out", "trusted_root.json"]):
        exported = svc.cli("trust-root", "export", *args, cwd=work)
        assert exported.returncode == 0, exported.stderr
    return Signed(work, artifact, bundle, work / "trust_config.json", work / "trusted_root.json",
                  out["identity"], issuer.url, out["digest"], out["name"], Path())


def _verifies(signed: Signed) -> None:
    ours = our_verify(signed, signed.bundle)
    assert ours.returncode == 0, ours.stderr
    theirs = sigstore_verify(signed, signed.bundle)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr


# --- no private key in the data directory ---------------------------------------------------

_PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _private_keys_in(data: Path) -> list[str]:
    """Every file under ``data`` scanned for a private key: a PEM ``PRIVATE KEY`` block, or a
    DER PKCS#8 / SEC1 (RFC 5915) key at any offset where a DER SEQUENCE starts."""
    found = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        if _PEM_PRIVATE.search(blob):
            found.append(f"{path}: PEM private key")
        for at in (m.start() for m in re.finditer(rb"\x30[\x81\x82]?", blob)):
            for length in _der_lengths(blob, at):
                try:
                    serialization.load_der_private_key(blob[at:at + length], None)
                except (ValueError, TypeError):
                    continue
                found.append(f"{path}@{at}: DER private key")
    return found


def _der_lengths(blob: bytes, at: int) -> list[int]:
    """The whole DER element's length if ``blob[at]`` starts a plausible SEQUENCE."""
    first = blob[at + 1:at + 2]
    if not first:
        return []
    if first[0] < 0x80:
        body, header = first[0], 2
    elif first[0] in (0x81, 0x82):
        size = first[0] - 0x80
        body, header = int.from_bytes(blob[at + 2:at + 2 + size]), 2 + size
    else:
        return []
    # an EC private key's DER is 100-200 bytes (SEC1 ~121, PKCS#8 ~138 for P-256)
    return [header + body] if 60 <= header + body <= 400 and at + header + body <= len(blob) \
        else []


def test_the_scan_finds_a_key_file(tmp_path: Path) -> None:
    """The scan above finds what it looks for: PEM, DER PKCS#8 and SEC1 inside other bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "a.pem").write_bytes(key.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for name, fmt in (("b.bin", serialization.PrivateFormat.PKCS8),
                      ("c.bin", serialization.PrivateFormat.TraditionalOpenSSL)):
        (tmp_path / name).write_bytes(b"junk" + key.private_bytes(
            Encoding.DER, fmt, serialization.NoEncryption()) + b"tail")
    assert len(_private_keys_in(tmp_path)) == 3


# --- pkcs11-tool's view of the token ---------------------------------------------------------

def _private_key_objects(token: Hsm) -> dict[str, str]:
    """label → pkcs11-tool's Access line, for every private key object on the token."""
    listed = token.hsm.pkcs11_tool("--token-label", LABEL, "--login", "--pin", PIN,
                                   "--list-objects", "--type", "privkey")
    assert listed.returncode == 0, listed.stderr
    objects: dict[str, str] = {}
    for block in re.split(r"\n(?=Private Key Object)", listed.stdout):
        label = re.search(r"label:\s+(\S+)", block)
        access = re.search(r"Access:\s+(.+)", block)
        if block.startswith("Private Key Object") and label and access:
            objects[label.group(1)] = access.group(1)
    return objects


def _assert_never_extractable(objects: dict[str, str]) -> None:
    for label, access in objects.items():
        flags = {f.strip() for f in access.split(",")}
        assert {"sensitive", "always sensitive", "never extractable"} <= flags, (label, access)
        assert "extractable" not in flags, (label, access)


# --- the tests -------------------------------------------------------------------------------

def test_keys_on_the_token_sign_rotate_and_restart(token: Hsm, service: Service,
                                                   issuer: FakeGitHubIssuer,
                                                   tmp_path: Path) -> None:
    data = service.data_dir
    reference = json.loads((data / "keys" / "pkcs11.json").read_text())
    assert reference["token_label"] == LABEL and "pin" not in json.dumps(reference).lower()
    # The TUF root key is the operator's, written to be moved offline (docs/deploy.md).
    shutil.move(root_key_path(data), tmp_path / "tuf-root-offline.key")
    assert set(reference["keys"]) == SERVICE_KEYS
    assert not list(data.rglob("*.key")) and _private_keys_in(data) == []
    objects = _private_key_objects(token)
    assert set(objects) == set(reference["keys"].values())
    _assert_never_extractable(objects)
    listed = token.hsm.pkcs11_tool("--token-label", LABEL, "--login", "--pin", PIN,
                                   "--list-objects", "--type", "privkey").stdout
    assert re.findall(r"Usage:\s+(.+)", listed) == ["sign"] * len(SERVICE_KEYS), listed

    tenant = service.tenant()
    before = _sign(service, issuer, tenant, tmp_path / "before", "before")
    _verifies(before)

    for kind in KINDS:
        done = token.signer("server", "rotate-key", "--data-dir", str(data), kind,
                            "--output", "json")
        assert done.returncode == 0, done.stderr
        active = json.loads(done.stdout)["active"]
        assert active["key"].startswith("pkcs11:"), active
    service.stop()
    service.start()
    after = _sign(service, issuer, tenant, tmp_path / "after", "after")
    _verifies(after)
    # The old bundle still verifies against the trust root after every rotation.
    _verifies(Signed(after.workdir, before.file, before.bundle, after.config, after.root,
                     before.identity, before.issuer, before.digest, before.name, Path()))

    ring = json.loads((data / "keys" / "keyring.json").read_text())["keys"]
    labels = {v["key"].removeprefix("pkcs11:") for kind in KINDS for v in ring[kind]}
    objects = _private_key_objects(token)
    assert labels <= set(objects) and len(objects) == len(SERVICE_KEYS) + len(KINDS)
    _assert_never_extractable(objects)
    assert not list(data.rglob("*.key")) and _private_keys_in(data) == []


def test_existing_token_keys_by_label(token: Hsm, issuer: FakeGitHubIssuer,
                                      tmp_path: Path) -> None:
    kinds = {"root": "op-root", "ca": "op-ca", "tsa": "op-tsa", "tlog": "op-tlog",
             "ctlog": "op-ctlog"}
    for label in kinds.values():
        made = token.hsm.pkcs11_tool("--token-label", LABEL, "--login", "--pin", PIN,
                                     "--keypairgen", "--key-type", "EC:prime256v1", "--label",
                                     label, "--usage-sign", "--sensitive")
        assert made.returncode == 0, made.stderr
    data = tmp_path / "data"
    svc = Service(data, _init(token, data, *(a for kind, label in kinds.items()
                                             for a in ("--pkcs11-key-label", f"{kind}={label}"))),
                  issuer.url, env=token.env)
    reference = json.loads((data / "keys" / "pkcs11.json").read_text())
    named = {"root": "op-root", "intermediate": "op-ca", "tsa": "op-tsa", "tlog": "op-tlog",
             "ctlog": "op-ctlog"}
    # The keys named by label are used; only those not named (TUF's roles, a newer log's)
    # are generated on the token.
    assert {k: v for k, v in reference["keys"].items() if k in named} == named
    generated = set(reference["keys"]) - set(named)
    assert generated == SERVICE_KEYS - set(named)
    assert set(_private_key_objects(token)) == set(reference["keys"].values())
    svc.start()
    try:
        _verifies(_sign(svc, issuer, svc.tenant(), tmp_path / "w", "existing"))
    finally:
        svc.stop()
    root = x509.load_pem_x509_certificate((data / "keys" / "root.pem").read_bytes())
    assert root.public_key() == _token_public_key(token, "op-root", tmp_path)


def _token_public_key(token: Hsm, label: str, tmp_path: Path) -> object:
    out = tmp_path / f"{label}.der"
    done = token.hsm.pkcs11_tool("--token-label", LABEL, "--read-object", "--type", "pubkey",
                                 "--label", label, "--output-file", str(out))
    assert done.returncode == 0, done.stderr
    return serialization.load_der_public_key(out.read_bytes())


def test_clear_errors_at_init_and_start(token: Hsm, issuer: FakeGitHubIssuer,
                                        tmp_path: Path) -> None:
    data = tmp_path / "data"
    wrong = token.signer("server", "init", "--data-dir", str(data), *init_args(LABEL),
                         pin="not-the-pin")
    assert wrong.returncode == 2 and "refused the PIN" in wrong.stderr, wrong.stderr
    absent = token.signer("server", "init", "--data-dir", str(tmp_path / "other"),
                          *init_args("no-such-token"))
    assert absent.returncode == 2 and "No PKCS#11 token labelled 'no-such-token'" in \
        absent.stderr, absent.stderr
    extractable = token.hsm.pkcs11_tool("--token-label", LABEL, "--login", "--pin", PIN,
                                        "--keypairgen", "--key-type", "EC:prime256v1",
                                        "--label", "loose", "--usage-sign", "--extractable")
    assert extractable.returncode == 0, extractable.stderr
    loose = token.signer("server", "init", "--data-dir", str(tmp_path / "loose"),
                         *init_args(LABEL), "--pkcs11-key-label", "root=loose")
    assert loose.returncode == 2 and "can leave the token" in loose.stderr, loose.stderr

    _init(token, data)
    start = [SIGNER, "server", "start", "--data-dir", str(data), "--port", "1"]
    for env, expected in (({**token.env, "SIGNER_PKCS11_PIN": "wrong"}, "refused the PIN"),
                          ({**token.hsm.env, "SIGNER_PKCS11_PIN": ""}, "SIGNER_PKCS11_PIN")):
        done = subprocess.run(start, capture_output=True, text=True, timeout=60,
                              env=clean_env(**env))
        assert done.returncode == 2 and expected in done.stderr, done.stderr
    away = tmp_path / "token-away"
    token.token_dir.rename(away)
    try:
        done = subprocess.run(start, capture_output=True, text=True, timeout=60,
                              env=clean_env(**token.env))
        assert done.returncode == 2 and f"No PKCS#11 token labelled '{LABEL}'" in \
            done.stderr, done.stderr
    finally:
        away.rename(token.token_dir)


class Load:
    """Clients signing distinct artifacts through the raw API (no retries), recording every
    answer."""

    def __init__(self, svc: Service, tenant: Tenant, clients: int = 4) -> None:
        self.svc, self.tenant = svc, tenant
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[str, str]] = []  # (name, id) of every 201
        self.unavailable: list[tuple[float, str]] = []  # (when, detail) of every 503
        self.other: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(clients)]
        for thread in self.threads:
            thread.start()

    def _post(self, path: str, body: dict[str, object]) -> requests.Response | None:
        response = self.svc.post(path, self.tenant.api_key, json=body)
        if response.status_code == 503:
            assert response.headers["Content-Type"] == "application/problem+json"
            with self.lock:
                self.unavailable.append((time.monotonic(), response.json()["detail"]))
            time.sleep(0.05)
            return None
        if response.status_code not in (200, 201):
            with self.lock:
                self.other.append(f"{response.status_code} {response.text[:200]}")
            return None
        return response

    def _run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            name = f"ghcr.io/hsm/c{n}/app{i}"
            digest = hashlib.sha256(name.encode()).hexdigest()
            key = ec.generate_private_key(ec.SECP256R1())
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
                key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
            issued = self._post("/v1/certificates", {"namespace": self.tenant.namespace,
                                                     "csr": csr, "provenance": {}})
            if issued is None:
                continue
            signature = base64.b64encode(key.sign(bytes.fromhex(digest), ec.ECDSA(
                Prehashed(hashes.SHA256())))).decode()
            ref = f"{name}@sha256:{digest}"
            stored = self._post("/v1/signatures", {
                "namespace": self.tenant.namespace, "name": ref,
                "certificate": issued.json()["certificate_chain"][0], "signature": signature})
            if stored is not None:
                with self.lock:
                    self.acked.append((ref, stored.json()["id"]))

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a client hung"


def test_token_pulled_under_load(token: Hsm, service: Service, tmp_path: Path) -> None:
    tenant = service.tenant()
    load = Load(service, tenant)
    away = tmp_path / "token-away"
    try:
        _wait(lambda: load.count() >= 5, "signing before the token is pulled", load)
        token.token_dir.rename(away)  # the token is gone: SoftHSM2 loses its objects
        pulled = time.monotonic()
        _wait(lambda: len(load.unavailable) >= 5, "503s while the token is gone", load)
        acked_while_gone = load.count()
        time.sleep(1.0)
        away.rename(token.token_dir)
        back = time.monotonic()
        _wait(lambda: load.count() >= acked_while_gone + 5, "signing after the token is back",
              load)
        recovered = time.monotonic() - back
    finally:
        load.finish()
    assert load.other == [], load.other[:5]
    details = {detail for _, detail in load.unavailable}
    assert all(f"PKCS#11 token '{LABEL}'" in d for d in details), details
    assert min(t for t, _ in load.unavailable) - pulled < 5.0  # quickly, not after a hang
    assert recovered < 10.0
    # Every acknowledged signature is in the log, found by its name.
    for ref, signature_id in load.acked:
        response = service.get("/v1/entries", tenant.api_key,
                               params={"namespace": tenant.namespace, "name": ref})
        assert response.status_code == 200, response.text
        assert signature_id in {e["id"] for e in response.json()["entries"]}, ref
    print(f"\n{len(load.acked)} acknowledged, {len(load.unavailable)} 503s "
          f"({len(details)} distinct details), recovered {recovered:.2f} s after the token "
          f"returned; e.g. {sorted(details)[0]!r}")


def _wait(condition: object, what: str, load: Load, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, (what, load.other[:3], load.unavailable[-3:])
        time.sleep(0.05)


def test_a_module_call_that_hangs_is_a_503_not_a_hang(token: Hsm, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """A module call that does not return (a network HSM gone quiet) holds no signer: each
    waits CALL_TIMEOUT at most, then signs again once the call has returned."""
    from signer.service import pkcs11

    for name, value in token.env.items():
        monkeypatch.setenv(name, value)
    fresh_module()  # this test's SOFTHSM2_CONF, whatever this process loaded before
    try:
        _hang(pkcs11.TokenKeys(tmp_path, pkcs11.Reference(MODULE, LABEL)), monkeypatch)
    finally:
        monkeypatch.undo()
        fresh_module()  # back to the SOFTHSM2_CONF the other tests of this process use


def _hang(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from signer.service import pkcs11

    key = store.generate("hang")
    monkeypatch.setattr(pkcs11, "CALL_TIMEOUT", 0.3)
    released = threading.Event()
    store.token._thread.submit(released.wait, 3.0)  # the token's thread is stuck in a call
    started = time.monotonic()
    with pytest.raises(pkcs11.Unavailable, match=r"did not answer within 0\.3 s"):
        key.sign(b"data")
    assert time.monotonic() - started < 1.0
    released.set()
    time.sleep(pkcs11.RETRY_INTERVAL)
    key.public_key.verify(key.sign(b"data"), b"data", ec.ECDSA(hashes.SHA256()))
