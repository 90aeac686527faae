"""Replicas signing, verifying and revoking at once: nothing lost, doubled or mixed up.

Two ``signer server start`` processes (one with ``--workers 2``) share one database and one
data directory. Many client threads alternate between them — a certificate from one
replica, its signature uploaded to the other — and the store is then read directly, as an
operator with a SQL shell would, and every entry is verified.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from requests.adapters import HTTPAdapter

from signer import bundle, operations, trust
from signer.artifact import ArtifactRef
from signer.client import RETRY, Client
from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.replicas.conftest import Cluster
from tests.service_process import Service

pytestmark = [pytest.mark.integration]

THREADS = 12
SIGNINGS_PER_THREAD = 6


@dataclass(frozen=True)
class Acknowledged:
    """What a client sent and what the service answered (201) for one signing."""

    id: str
    name: str
    digest: str
    identity: str
    ref: str
    signature: bytes


def _quote(text: str) -> str:
    assert "'" not in text
    return f"'{text}'"


def _token(issuer: FakeGitHubIssuer, repo: str, ref: str) -> str:
    return issuer.token(repository=repo, ref=ref)


def _prepare(digest: str) -> tuple[str, bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    signature = key.sign(bytes.fromhex(digest), ec.ECDSA(Prehashed(hashes.SHA256())))
    return csr.public_bytes(Encoding.PEM).decode(), signature, key


def sign_across(first: Service, second: Service, namespace: str, token: str, name: str,
                digest: str) -> tuple[dict, bytes, str]:
    """Certificate from one replica, the signature uploaded to the other."""
    csr, signature, _ = _prepare(digest)
    issued = Client(first.url, token).issue_certificate(namespace, csr, {})
    leaf = issued["certificate_chain"][0]
    stored = Client(second.url, token).submit_signature(
        namespace, f"{name}@sha256:{digest}", leaf, base64.b64encode(signature).decode())
    return stored, signature, leaf


def _stored(service: Service, namespace: str) -> list:
    return service.sql(
        "SELECT id, name, digest, identity, signature_sha256, source_repository_ref, bundle, "
        f"revocation_id, log_index FROM signatures WHERE namespace = {_quote(namespace)}")


def check_store_matches(service: Service, namespace: str, acked: list[Acknowledged]) -> None:
    """Every acknowledged signature exactly once, with its own name, digest and identity."""
    ids = [a.id for a in acked]
    assert len(set(ids)) == len(ids), "the service answered the same id for two signings"
    rows = _stored(service, namespace)
    assert sorted(r.id for r in rows) == sorted(ids), "lost or extra rows"
    by_id = {r.id: r for r in rows}
    for a in acked:
        row = by_id[a.id]
        assert (row.name, row.digest, row.identity, row.source_repository_ref) == \
            (a.name, a.digest, a.identity, a.ref)
        assert row.signature_sha256 == hashlib.sha256(a.signature).hexdigest()
        stored = bundle.parse(row.bundle)
        assert stored.digest.hex() == a.digest
        assert stored.signature == a.signature
        san = stored.certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert a.identity in san.get_values_for_type(x509.UniformResourceIdentifier)
    # The artifact rows count their signatures right, though threads raced to create them.
    per_artifact = Counter((a.name, a.digest) for a in acked)
    artifacts = service.sql(
        "SELECT name, digest, signature_count FROM artifacts "
        f"WHERE namespace = {_quote(namespace)}")
    assert {(r.name, r.digest): r.signature_count for r in artifacts} == dict(per_artifact)
    # Where the transparency log numbers entries, no two signatures share a number.
    indices = [r.log_index for r in rows if r.log_index is not None]
    assert len(set(indices)) == len(indices), "two signatures got the same log index"


def test_concurrent_signing_across_replicas_loses_doubles_and_mixes_nothing(
    cluster: Cluster, workdir: Path
) -> None:
    tenant = cluster.tenant()
    a, b = cluster.replicas
    acked: list[Acknowledged] = []
    lock = threading.Lock()

    def client(t: int) -> None:
        repo, ref = f"acme/app{t}", f"refs/heads/branch-{t}"
        token = _token(cluster.issuer, repo, ref)
        for i in range(SIGNINGS_PER_THREAD):
            # Even rounds: every thread signs the same name and digest at about the same time
            # (the artifact row is raced for); odd rounds: a digest of its own.
            name = f"ghcr.io/acme/shared/image{i % 3}"
            seed = f"{tenant.namespace} shared {i}" if i % 2 == 0 else \
                f"{tenant.namespace} {t} {i}"
            digest = hashlib.sha256(seed.encode()).hexdigest()
            first, second = (a, b) if (t + i) % 2 == 0 else (b, a)
            stored, signature, _ = sign_across(first, second, tenant.namespace, token, name,
                                               digest)
            identity = f"repo:{repo}:ref:{ref}"
            assert stored["identity"] == identity
            assert stored["name"] == f"{name}@sha256:{digest}"
            with lock:
                acked.append(Acknowledged(stored["id"], name, digest, identity, ref, signature))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(client, range(THREADS)))
    assert len(acked) == THREADS * SIGNINGS_PER_THREAD
    check_store_matches(a, tenant.namespace, acked)

    # Every entry verifies, asked of either replica, with the trust root pinned once.
    material = trust.parse(Client(a.url).trust_root())
    for n, entry in enumerate(acked):
        replica = (a, b)[n % 2]
        report = operations.verify(
            ArtifactRef(entry.name, entry.digest), material, cluster.issuer.url,
            identity=entry.identity, client=Client(replica.url, tenant.api_key),
            namespace=tenant.namespace)
        assert report.ok, report.explain()
        mine = [r for r in report.results if r.entry_id == entry.id]
        assert len(mine) == 1 and mine[0].ok, report.explain()

    # And through the real CLI, on both replicas.
    trust_root = workdir / "trusted_root.json"
    trust_root.write_bytes(Client(a.url).trust_root())
    for n, entry in enumerate(acked[:4]):
        replica = (a, b)[n % 2]
        done = replica.cli("artifact", "verify", "--name", f"{entry.name}@sha256:{entry.digest}",
                           "--certificate-oidc-issuer", cluster.issuer.url,
                           "--certificate-identity", entry.identity,
                           "--trust-root", str(trust_root),
                           env={"SIGNER_API_KEY": tenant.api_key,
                                "SIGNER_NAMESPACE": tenant.namespace})
        assert done.returncode == 0, done.stderr
        assert entry.id in done.stdout


def test_retried_upload_is_one_entry_whichever_replica_answers(cluster: Cluster) -> None:
    tenant = cluster.tenant()
    a, b = cluster.replicas
    token = _token(cluster.issuer, "acme/app", "refs/tags/v1.2.3")
    for round_ in range(4):
        digest = hashlib.sha256(f"{tenant.namespace} retry {round_}".encode()).hexdigest()
        csr, signature, _ = _prepare(digest)
        leaf = Client(a.url, token).issue_certificate(tenant.namespace, csr, {})[
            "certificate_chain"][0]
        body = {"namespace": tenant.namespace, "name": f"ghcr.io/acme/app@sha256:{digest}",
                "certificate": leaf, "signature": base64.b64encode(signature).decode()}
        start = threading.Barrier(8)

        def upload(n: int, body: dict = body, start: threading.Barrier = start
                   ) -> tuple[int, str]:
            replica = (a, b)[n % 2]
            # As the CLI uploads: a 503 (a write that lost a race) is retried.
            session = requests.Session()
            session.mount("http://", HTTPAdapter(max_retries=RETRY))
            start.wait()
            answer = session.post(f"{replica.url}/v1/signatures", json=body, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code in (200, 201), answer.text
            return answer.status_code, answer.json()["id"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, range(8)))
        assert len({sig_id for _, sig_id in answers}) == 1, answers
        assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
        rows = a.sql("SELECT id FROM signatures WHERE namespace = "
                     f"{_quote(tenant.namespace)} AND digest = {_quote(digest)}")
        assert [r.id for r in rows] == [answers[0][1]]


def test_revocations_race_signings_and_each_other(cluster: Cluster, workdir: Path) -> None:
    tenant = cluster.tenant()
    a, b = cluster.replicas
    name = "ghcr.io/acme/app"
    bad, good = "refs/tags/v1-bad", "refs/tags/v2-good"
    bad_token = _token(cluster.issuer, "acme/app", bad)
    good_token = _token(cluster.issuer, "acme/app", good)

    def sign_many(token: str, label: str, count: int) -> list[str]:
        out = []
        for i in range(count):
            digest = hashlib.sha256(f"{tenant.namespace} {label} {i}".encode()).hexdigest()
            first, second = (a, b) if i % 2 == 0 else (b, a)
            out.append(sign_across(first, second, tenant.namespace, token, name, digest)[0]["id"])
        return out

    with ThreadPoolExecutor(4) as pool:
        bad_ids = [i for ids in pool.map(lambda n: sign_many(bad_token, f"bad{n}", 5), range(4))
                   for i in ids]

    # Both replicas revoke the bad ref at once, while good signings and lookups go on.
    start = threading.Barrier(2)

    def revoke(replica: Service) -> int:
        start.wait()
        return Client(replica.url, tenant.api_key).revoke(
            tenant.namespace, name, bad, "leaked runner")["revoked_count"]

    def lookups() -> None:
        for n in range(10):
            Client((a, b)[n % 2].url, tenant.api_key).entries(
                tenant.namespace, f"{name}@sha256:"
                + hashlib.sha256(f"{tenant.namespace} bad0 0".encode()).hexdigest())

    with ThreadPoolExecutor(6) as pool:
        counts = [pool.submit(revoke, r) for r in (a, b)]
        good_jobs = [pool.submit(sign_many, good_token, f"good{n}", 4) for n in range(3)]
        looked = pool.submit(lookups)
        revoked_counts = [f.result() for f in counts]
        good_ids = [i for f in good_jobs for i in f.result()]
        looked.result()

    # Each bad signature marked exactly once, by one of the two revocations; no good one.
    assert sum(revoked_counts) == len(bad_ids)
    rows = {r.id: r for r in _stored(a, tenant.namespace)}
    assert set(rows) == set(bad_ids) | set(good_ids)
    assert all(rows[i].revocation_id is not None for i in bad_ids)
    assert all(rows[i].revocation_id is None for i in good_ids)
    revocations = a.sql("SELECT id, count FROM revocations WHERE namespace = "
                        f"{_quote(tenant.namespace)}")
    marked = Counter(rows[i].revocation_id for i in bad_ids)
    assert {r.id: r.count for r in revocations if r.count} == dict(marked)

    # Verification on either replica: the bad ref fails at revocation, the good one passes.
    digest = hashlib.sha256(f"{tenant.namespace} bad0 0".encode()).hexdigest()
    env = {"SIGNER_API_KEY": tenant.api_key, "SIGNER_NAMESPACE": tenant.namespace}
    issuer = cluster.issuer.url
    failed = b.cli("artifact", "verify", "--name", f"{name}@sha256:{digest}",
                   "--certificate-oidc-issuer", issuer, cwd=workdir, env=env)
    assert failed.returncode == 1, failed.stderr
    assert "(revocation) failed" in failed.stderr and "leaked runner" in failed.stderr
    digest = hashlib.sha256(f"{tenant.namespace} good0 0".encode()).hexdigest()
    passed = a.cli("artifact", "verify", "--name", f"{name}@sha256:{digest}",
                   "--certificate-oidc-issuer", issuer, "--source-repository-ref", good,
                   cwd=workdir, env=env)
    assert passed.returncode == 0, passed.stderr

