"""The logs' read APIs (Rekor v1 and RFC 6962 shapes), revocations as log entries, the
monitor, and one tree under two replicas."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from signer import bundle as bundles
from signer.service.keys import FileKey, KeySigner
from signer.transparency import merkle
from signer.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.interop.conftest import Signed
from tests.service_process import Service, Tenant, database, init
from tests.softhsm import service_key

pytestmark = pytest.mark.integration


def test_rekor_shaped_reads(service: Service, tenant: Tenant, signed: Signed) -> None:
    entry = bundles.read(signed.bundle).tlog_entries[0]
    head = service.get("/api/v1/log").json()
    assert head["treeSize"] > entry.log_index
    by_index = service.get("/api/v1/log/entries", tenant.api_key,
                           params={"logIndex": entry.log_index})
    assert by_index.status_code == 200, by_index.text
    [(uuid, body)] = by_index.json().items()
    assert base64.b64decode(body["body"]) == entry.canonicalized_body
    assert uuid == merkle.leaf_hash(entry.canonicalized_body).hex()
    proof = body["verification"]["inclusionProof"]
    merkle.verify_inclusion(merkle.leaf_hash(entry.canonicalized_body), proof["logIndex"],
                            proof["treeSize"], [bytes.fromhex(h) for h in proof["hashes"]],
                            bytes.fromhex(proof["rootHash"]))
    # By artifact digest, and by UUID.
    found = service.post("/api/v1/log/entries/retrieve", tenant.api_key,
                         json={"hash": signed.digest}).json()
    assert any(uuid in e for e in found)
    found = service.post("/api/v1/log/entries/retrieve", tenant.api_key,
                         json={"entryUUIDs": [uuid]}).json()
    assert [next(iter(e)) for e in found] == [uuid]
    # Another namespace cannot read the entry's body.
    other = service.tenant()
    assert service.get("/api/v1/log/entries", other.api_key,
                       params={"logIndex": entry.log_index}).status_code == 404
    assert service.post("/api/v1/log/entries/retrieve", other.api_key,
                        json={"hash": signed.digest}).json() == []
    # Consistency between the bundle's checkpoint and today's head.
    consistency = service.get("/api/v1/log/proof", params={
        "firstSize": entry.inclusion_proof.tree_size, "lastSize": head["treeSize"]}).json()
    merkle.verify_consistency(entry.inclusion_proof.tree_size, head["treeSize"],
                              entry.inclusion_proof.root_hash, bytes.fromhex(head["rootHash"]),
                              [bytes.fromhex(h) for h in consistency["hashes"]])
    bad = service.get("/api/v1/log/proof", params={"firstSize": 5, "lastSize": 10**9})
    assert bad.status_code == 400


def test_ct_log_reads(service: Service, signed: Signed) -> None:
    sth = service.get("/ct/v1/get-sth").json()
    assert sth["tree_size"] >= 1 and len(base64.b64decode(sth["sha256_root_hash"])) == 32
    entries = service.get("/ct/v1/get-entries", service.admin_key,
                          params={"start": 0, "end": sth["tree_size"] - 1}).json()["entries"]
    assert len(entries) == min(sth["tree_size"], 100)
    leaf = merkle.leaf_hash(base64.b64decode(entries[0]["leaf_input"]))
    proof = service.get("/ct/v1/get-proof-by-hash", params={
        "hash": base64.b64encode(leaf).decode(), "tree_size": sth["tree_size"]}).json()
    merkle.verify_inclusion(leaf, proof["leaf_index"], sth["tree_size"],
                            [base64.b64decode(h) for h in proof["audit_path"]],
                            base64.b64decode(sth["sha256_root_hash"]))
    tenant_key = service.tenant().api_key
    assert service.get("/ct/v1/get-entries", tenant_key,
                       params={"start": 0, "end": 0}).status_code == 403


def test_revocation_is_a_log_entry(service: Service, tenant: Tenant, signed: Signed) -> None:
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    revoked = service.cli("artifact", "revoke-signature", "--name", signed.name,
                          "--source-repository-ref", "refs/tags/v1.2.3", "--reason", "bad build",
                          "--output", "json", env=env)
    assert revoked.returncode == 0, revoked.stderr
    index = json.loads(revoked.stdout)["log_index"]
    entry = service.get("/api/v1/log/entries", tenant.api_key, params={"logIndex": index})
    body = json.loads(base64.b64decode(next(iter(entry.json().values()))["body"]))
    assert body["kind"] == "signer-revocation"
    assert body["spec"]["reason"] == "bad build" and body["spec"]["namespace"] == tenant.namespace
    failed = service.cli("artifact", "verify", "--file", str(signed.file),
                         "--certificate-oidc-issuer", signed.issuer, env=env)
    assert failed.returncode == 1
    assert f"transparency log entry {index}" in failed.stderr


def test_monitor_detects_a_fork(service: Service, signed: Signed, tmp_path: Path) -> None:
    state = tmp_path / "cp.txt"
    args = ["log", "verify", "--trust-root", str(signed.root), "--checkpoint", str(state)]
    first = service.cli(*args)
    assert first.returncode == 0, first.stderr
    assert "first run" in first.stdout
    service.tenant()  # more entries: a new certificate would grow the CT log; sign one more:
    again = service.cli(*args)
    assert again.returncode == 0 and "log consistent" in again.stdout
    # The log equivocates: a checkpoint for the same size with another root, signed by the
    # log's own key (as a compromised or forking log would), is caught as a fork.
    saved = verify_checkpoint(state.read_text(), urlsplit(service.url).netloc,
                              _tlog_key(service).public_key)
    forged = sign_checkpoint(Checkpoint(saved.origin, saved.size,
                                        hashlib.sha256(b"fork").digest()),
                             urlsplit(service.url).netloc, _tlog_key(service))
    state.write_text(forged)
    forked = service.cli(*args)
    assert forked.returncode == 1
    assert "forked" in forked.stdout or "does not extend" in forked.stdout, forked.stdout
    # A checkpoint signed by another key is refused as such.
    state.write_text(sign_checkpoint(saved, urlsplit(service.url).netloc,
                                     FileKey(ec.generate_private_key(ec.SECP256R1()))))
    refused = service.cli(*args)
    assert refused.returncode == 1 and "does not verify" in refused.stdout


def _tlog_key(service: Service) -> KeySigner:
    return service_key(service.data_dir / "keys", "tlog")


def test_two_replicas_one_log(issuer: FakeGitHubIssuer, tmp_path: Path) -> None:
    """Many signers against two replicas sharing one PostgreSQL database: indices dense and
    unique, every checkpoint consistent with the one before."""
    with database("postgresql") as url:
        data = tmp_path / "data"
        admin = init(data, url)
        replicas = [Service(data, admin, issuer.url, database_url=url) for _ in range(2)]
        # Replicas behind one load balancer share one public URL: the log's name in every
        # checkpoint, and the trust root's baseUrl.
        for replica in replicas:
            replica.extra_args = ["--public-url", replicas[0].url]
        for replica in replicas:
            replica.start()
        try:
            tenant = replicas[0].tenant()
            errors: list[str] = []

            def sign(n: int) -> None:
                replica = replicas[n % 2]
                name = f"ghcr.io/acme/r@sha256:{hashlib.sha256(str(n).encode()).hexdigest()}"
                done = replica.cli("artifact", "sign", "--name", name, "--bundle",
                                   str(tmp_path / f"{n}.json"),
                                   env={"SIGNER_API_KEY": tenant.api_key,
                                        "SIGNER_NAMESPACE": tenant.namespace})
                if done.returncode:
                    errors.append(done.stderr)

            threads = [threading.Thread(target=sign, args=(n,)) for n in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[:2]
            indices = sorted(r[0] for r in replicas[0].sql("SELECT idx FROM log_entries "
                                                           "WHERE tree = 'tlog'"))
            assert indices == list(range(len(indices)))
            logged = sorted(r[0] for r in replicas[0].sql(
                "SELECT log_index FROM signatures WHERE log_index IS NOT NULL"))
            assert len(logged) == 16 == len(set(logged))
            sizes = [r[0] for r in replicas[0].sql(
                "SELECT size FROM log_checkpoints WHERE tree = 'tlog' ORDER BY size")]
            head = replicas[1].get("/api/v1/log").json()
            for earlier in sizes[1:]:
                proof = replicas[1].get("/api/v1/log/proof", params={
                    "firstSize": earlier, "lastSize": head["treeSize"]}).json()
                old_root = bytes.fromhex(replicas[0].get(
                    f"/api/v1/log/checkpoints/{earlier}").json()["rootHash"])
                merkle.verify_consistency(earlier, head["treeSize"], old_root,
                                          bytes.fromhex(head["rootHash"]),
                                          [bytes.fromhex(h) for h in proof["hashes"]])
            root = (tmp_path / "root.json")
            replicas[0].cli("trust-root", "export", "--out", str(root))
            monitor = replicas[1].cli("log", "verify", "--trust-root", str(root), "--checkpoint",
                                      str(tmp_path / "cp"))
            assert monitor.returncode == 0, monitor.stderr
        finally:
            for replica in replicas:
                replica.stop()
