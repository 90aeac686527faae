"""Bundles next to the image, through the real CLI, a real signer service and a real
registry (distribution 2.8 on loopback, tag schema); skopeo reads what signer wrote."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import requests

from signer import operations
from signer.artifact import parse_ref
from tests.registry.conftest import PASSWORD, USER, LocalRegistry, Signing

pytestmark = [pytest.mark.registry, pytest.mark.integration, pytest.mark.docker]

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
         "size": 2}
IDENTITY = "repo:acme/app:ref:refs/tags/v1.2.3"


def split(image: str) -> tuple[str, str, str]:
    host, rest = image.split("/", 1)
    repository, digest = rest.split("@")
    return host, repository, digest


def index_of(reg: LocalRegistry, image: str) -> dict:
    host, repository, digest = split(image)
    return json.loads(reg.skopeo_raw(f"{host}/{repository}:{digest.replace(':', '-')}"))


def blob(image: str, digest: str) -> requests.Response:
    host, repository, _ = split(image)
    return requests.get(f"http://{host}/v2/{repository}/blobs/{digest}", auth=(USER, PASSWORD),
                        timeout=30)


def test_sign_push_then_the_registry_holds_an_oci_referrer_and_verify_passes(
        signing: Signing, image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = signing.registry
    host, repository, subject = split(image)
    out = signing.sign(image, "--push")
    referrer = out["referrer"]
    assert referrer["index"] == f"tag {subject.replace(':', '-')}" and referrer["added"]

    # The tag-schema index, as skopeo reads it from the registry.
    index = index_of(reg, image)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = [m for m in index["manifests"] if m["digest"] == referrer["digest"]]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["artifactType"] == BUNDLE
    assert entry["annotations"]["dev.sigstore.bundle.content"] == "message-signature"
    assert entry["annotations"]["org.opencontainers.image.created"].endswith("Z")

    # The artifact manifest: its bytes hash to the digest, and it refers to the image's
    # manifest as the registry serves it (media type, digest, size).
    raw = reg.skopeo_raw(f"{host}/{repository}@{referrer['digest']}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == referrer["digest"]
    assert len(raw) == entry["size"]
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == BUNDLE
    assert manifest["config"] == EMPTY
    raw_image = reg.skopeo_raw(image)
    assert manifest["subject"] == {"mediaType": json.loads(raw_image)["mediaType"],
                                   "digest": subject, "size": len(raw_image)}
    assert manifest["annotations"] == entry["annotations"]
    [layer] = manifest["layers"]
    assert layer["mediaType"] == BUNDLE
    bundle_bytes = blob(image, layer["digest"]).content
    assert json.loads(bundle_bytes) == out["bundle"] and len(bundle_bytes) == layer["size"]
    assert blob(image, EMPTY["digest"]).content == b"{}"

    # Verified from the registry alone: the signer service's address is dead here.
    dead = {"SIGNER_API": "http://127.0.0.1:9"}
    ok = signing.verify(image, "--certificate-identity", IDENTITY,
                        "--source-repository", "acme/app", **dead)
    assert ok.returncode == 0, ok.stderr
    assert referrer["digest"] in ok.stdout and "revocation was not checked" in ok.stdout
    as_json = json.loads(signing.verify(image, "--certificate-identity", IDENTITY,
                                        "--output", "json", **dead).stdout)
    assert as_json["verified"] and as_json["revocation_checked"] is False
    # (--certificate-identity matched one of the leaf's SANs; "identity" is its first.)
    assert any(e["verified"] and e["id"].endswith(referrer["digest"])
               for e in as_json["entries"])

    listed = signing.cli("artifact", "list", "--from-registry", "--name", image,
                         "--output", "json", **dead)
    assert listed.returncode == 0, listed.stderr
    shown = {r["digest"]: r for r in json.loads(listed.stdout)["referrers"]}
    assert shown[referrer["digest"]]["artifact_type"] == BUNDLE
    assert shown[referrer["digest"]]["created"] == entry["annotations"][
        "org.opencontainers.image.created"]

    # The same bundle pushed again adds nothing: same manifest, same index.
    monkeypatch.setenv("DOCKER_CONFIG", str(reg.docker_config))
    before = reg.skopeo_raw(f"{host}/{repository}:{subject.replace(':', '-')}")
    again = operations.push_to_registry(parse_ref(image), bundle_bytes)
    assert again.digest == referrer["digest"] and not again.added
    assert reg.skopeo_raw(f"{host}/{repository}:{subject.replace(':', '-')}") == before

    # A wrong identity is refused, naming the step.
    wrong = signing.verify(image, "--certificate-identity", "repo:acme/app:ref:refs/heads/x")
    assert wrong.returncode == 1 and "step 8" in wrong.stderr


def test_tampered_foreign_and_other_identity_bundles_are_refused(
        signing: Signing, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = signing.registry
    image = reg.push_image("app-refused", "refused\n")
    host, repository, _ = split(image)
    monkeypatch.setenv("DOCKER_CONFIG", str(reg.docker_config))
    ref = parse_ref(image)

    good = signing.sign(image)["bundle"]  # signed, not pushed: the parts are made from it
    tampered = json.loads(json.dumps(good))
    signature = bytearray(base64.b64decode(tampered["messageSignature"]["signature"]))
    signature[-1] ^= 1
    tampered["messageSignature"]["signature"] = base64.b64encode(bytes(signature)).decode()
    digests = {"tampered": operations.push_to_registry(ref, json.dumps(tampered)).digest}

    other_digest = hashlib.sha256(b"another image").hexdigest()
    foreign = signing.sign(f"{host}/{repository}@sha256:{other_digest}")["bundle"]
    digests["another digest"] = operations.push_to_registry(ref, json.dumps(foreign)).digest

    by_key = signing.cli("artifact", "sign", "--name", image, "--push", "--output", "json",
                         SIGNER_API_KEY=signing.tenant.api_key)
    assert by_key.returncode == 0, by_key.stderr
    digests["another identity"] = json.loads(by_key.stdout)["referrer"]["digest"]

    dsse = {"mediaType": good["mediaType"], "verificationMaterial": good["verificationMaterial"],
            "dsseEnvelope": {"payload": base64.b64encode(b"{}").decode(),
                             "payloadType": "application/vnd.in-toto+json",
                             "signatures": [{"sig": base64.b64encode(b"x").decode()}]}}
    digests["dsse"] = operations.push_to_registry(ref, json.dumps(dsse),
                                                  "https://slsa.dev/provenance/v1").digest
    assert len(set(digests.values())) == 4
    assert {m["digest"] for m in index_of(reg, image)["manifests"]} == set(digests.values())

    refused = signing.verify(image, "--certificate-identity", IDENTITY)
    assert refused.returncode == 1, refused.stdout
    lines = {d: line for line in refused.stderr.splitlines() for d in digests.values()
             if d in line}
    # The signature bytes are covered by the timestamp (2), the log entry (6) and step 7.
    assert re.search(r"step [267] \(", lines[digests["tampered"]])
    assert "step 1" in lines[digests["another digest"]]
    assert "step 8" in lines[digests["another identity"]]
    # A DSSE bundle is an attestation: without --predicate-type it is refused at step 1.
    assert "step 1" in lines[digests["dsse"]]

    listed = json.loads(signing.cli("artifact", "list", "--from-registry", "--name", image,
                                    "--output", "json").stdout)["referrers"]
    [attestation] = [r for r in listed if r["digest"] == digests["dsse"]]
    assert attestation["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert attestation["content"] == "dsse-envelope"

    # One good signature among them: verification passes, and still names the others.
    pushed = signing.sign(image, "--push")["referrer"]["digest"]
    ok = signing.verify(image, "--certificate-identity", IDENTITY)
    assert ok.returncode == 0, ok.stderr
    assert f"{pushed}: ok" in ok.stdout and "step 1" in ok.stdout


def test_concurrent_pushes_for_one_image_all_end_up_in_the_index(
        signing: Signing, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = signing.registry
    image = reg.push_image("app-race", "race\n")
    monkeypatch.setenv("DOCKER_CONFIG", str(reg.docker_config))
    bundles = [json.dumps(signing.sign(image)["bundle"]) for _ in range(3)]
    start = threading.Barrier(len(bundles))
    pushed: dict[int, str] = {}
    failures: list[BaseException] = []

    def push(i: int) -> None:
        try:
            start.wait()
            pushed[i] = operations.push_to_registry(parse_ref(image), bundles[i]).digest
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    index = index_of(reg, image)
    assert sorted(m["digest"] for m in index["manifests"]) == sorted(pushed.values())
    assert len(pushed) == 3
    ok = signing.verify(image, "--certificate-identity", IDENTITY)
    assert ok.returncode == 0 and all(f"{d}: ok" in ok.stdout for d in pushed.values())


def write_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_credentials_from_a_helper_and_clear_refusals(signing: Signing, image: str,
                                                      tmp_path: Path) -> None:
    host = split(image)[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    helper = bin_dir / "docker-credential-signertest"
    helper.write_text(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n"
        f"printf '%s' \"$server\" > {asked}\n"
        f"printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' "
        "\"$server\"\n")
    helper.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    helped = write_config(tmp_path / "helper", {"credHelpers": {host: "signertest"}})
    listed = signing.cli("artifact", "list", "--from-registry", "--name", image,
                         DOCKER_CONFIG=str(helped), PATH=path)
    assert listed.returncode == 0, listed.stderr
    assert asked.read_text() == host

    store = write_config(tmp_path / "store", {"credsStore": "signertest"})
    assert signing.cli("artifact", "list", "--from-registry", "--name", image,
                       DOCKER_CONFIG=str(store), PATH=path).returncode == 0

    wrong_secret = "not-the-password-" + "x" * 8
    auth = base64.b64encode(f"{USER}:{wrong_secret}".encode()).decode()
    wrong = write_config(tmp_path / "wrong", {"auths": {host: {"auth": auth}}})
    refused = signing.verify(image, DOCKER_CONFIG=str(wrong))
    assert refused.returncode == 3
    assert "refused the credentials" in refused.stderr and "docker login" in refused.stderr
    assert wrong_secret not in refused.stderr + refused.stdout and auth not in refused.stderr

    none = write_config(tmp_path / "none", {})
    kept = tmp_path / "kept.sigstore.json"
    anonymous = signing.cli("artifact", "sign", "--name", image, "--push", "--bundle", str(kept),
                            "--enable-github-action-token", DOCKER_CONFIG=str(none))
    assert anonymous.returncode == 3
    assert "needs credentials" in anonymous.stderr and "but the push" in anonymous.stderr
    assert f"signer artifact push --name {image} --bundle {kept}" in anonymous.stderr
    retried = signing.cli("artifact", "push", "--name", image, "--bundle", str(kept),
                          "--output", "json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["added"] is True

    missing = write_config(tmp_path / "missing", {"credHelpers": {host: "nosuchhelper"}})
    no_helper = signing.cli("artifact", "list", "--from-registry", "--name", image,
                            DOCKER_CONFIG=str(missing))
    assert no_helper.returncode == 2 and "docker-credential-nosuchhelper" in no_helper.stderr

    absent = f"{host}/never-pushed@sha256:{'0' * 64}"
    nothing = signing.verify(absent)
    assert nothing.returncode == 1 and "No Sigstore bundle refers to" in nothing.stderr
    not_there = signing.cli("artifact", "sign", "--name", absent, "--push",
                            "--enable-github-action-token")
    assert not_there.returncode == 1 and "is not in the registry" in not_there.stderr


def test_plain_http_only_for_loopback_or_when_allowed(signing: Signing, image: str,
                                                      tmp_path: Path) -> None:
    hostname = socket.gethostname()
    try:
        address = socket.gethostbyname(hostname)
    except OSError:
        pytest.skip(f"the host name {hostname} does not resolve")
    if not address.startswith("127."):
        pytest.skip(f"the host name {hostname} does not resolve to loopback ({address})")
    host, repository, digest = split(image)
    port = host.rsplit(":", 1)[1]
    named = f"{hostname}:{port}/{repository}@{digest}"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = write_config(tmp_path / "named", {"auths": {f"{hostname}:{port}": {"auth": auth}}})
    refused = signing.cli("artifact", "list", "--from-registry", "--name", named,
                          DOCKER_CONFIG=str(config))
    assert refused.returncode == 2
    assert "does not answer over TLS" in refused.stderr
    assert "--allow-insecure-registry" in refused.stderr
    allowed = signing.cli("artifact", "list", "--from-registry", "--name", named,
                          "--allow-insecure-registry", DOCKER_CONFIG=str(config))
    assert allowed.returncode == 0, allowed.stderr
    by_env = signing.cli("artifact", "list", "--from-registry", "--name", named,
                         DOCKER_CONFIG=str(config), SIGNER_ALLOW_INSECURE_REGISTRY="1")
    assert by_env.returncode == 0, by_env.stderr


def test_the_distribution_token_flow(signing: Signing, image: str, token_registry: LocalRegistry,
                                     tmp_path: Path) -> None:
    tokens = token_registry.token_service
    assert tokens is not None
    copied = token_registry.copy_from(signing.registry, image)
    challenge = requests.get(f"http://{token_registry.host}/v2/", timeout=10)
    assert challenge.headers["WWW-Authenticate"].startswith(f'Bearer realm="{tokens.url}"')
    config = {"DOCKER_CONFIG": str(token_registry.docker_config)}
    tokens.requests.clear()
    pushed = signing.sign(copied, "--push", **config)["referrer"]
    assert "GET" in tokens.requests  # the credentials went to the realm, for a token
    index = json.loads(token_registry.skopeo_raw(
        f"{token_registry.host}/app:{split(copied)[2].replace(':', '-')}"))
    assert [m["digest"] for m in index["manifests"]] == [pushed["digest"]]
    ok = signing.verify(copied, "--certificate-identity", IDENTITY, **config)
    assert ok.returncode == 0, ok.stderr

    host = token_registry.host
    refresh = write_config(tmp_path / "refresh", {"auths": {host: {
        "identitytoken": tokens.refresh_token}}})
    tokens.requests.clear()
    assert signing.verify(copied, DOCKER_CONFIG=str(refresh)).returncode == 0
    assert tokens.requests == ["POST"]  # the refresh-token grant, no password

    auth = base64.b64encode(f"{USER}:wrong".encode()).decode()
    wrong = write_config(tmp_path / "wrong", {"auths": {host: {"auth": auth}}})
    refused = signing.verify(copied, DOCKER_CONFIG=str(wrong))
    assert refused.returncode == 3 and "refused the credentials" in refused.stderr


def test_a_writer_that_overwrites_the_index_is_repaired(
        signing: Signing, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lost update made certain: another writer, who read the index before our write,
    writes its own view over ours while we settle; we notice and merge ours back in."""
    reg = signing.registry
    image = reg.push_image("app-overwrite", "overwrite\n")
    host, repository, subject = split(image)
    tag = subject.replace(":", "-")
    monkeypatch.setenv("DOCKER_CONFIG", str(reg.docker_config))
    first, second = (json.dumps(signing.sign(image)["bundle"]) for _ in range(2))
    kept = operations.push_to_registry(parse_ref(image), first).digest
    stale = reg.skopeo_raw(f"{host}/{repository}:{tag}")  # the other writer's view: [first]

    result: dict[str, str] = {}
    pusher = threading.Thread(target=lambda: result.update(
        digest=operations.push_to_registry(parse_ref(image), second).digest))
    pusher.start()
    for _ in range(200):  # our write lands ...
        seen = reg.skopeo_raw(f"{host}/{repository}:{tag}", check=False)
        if seen and len(json.loads(seen)["manifests"]) == 2:
            break
    else:
        pytest.fail("the second entry never appeared")
    overwritten = requests.put(  # ... and the other writer's stale view lands over it
        f"http://{host}/v2/{repository}/manifests/{tag}", data=stale, auth=(USER, PASSWORD),
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}, timeout=30)
    assert overwritten.status_code == 201
    pusher.join(120)
    final = {m["digest"] for m in index_of(reg, image)["manifests"]}
    assert final == {kept, result["digest"]}


def test_the_policy_controller_trust_root_is_signers_trust_root(signing: Signing) -> None:
    out = signing.workdir / "signer.trustroot.json"
    done = signing.service.cli("trust-root", "export", "--policy-controller", "signer",
                               "--out", str(out))
    assert done.returncode == 0, done.stderr
    manifest = json.loads(out.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("policy.sigstore.dev/v1alpha1",
                                                          "TrustRoot")
    keys = manifest["spec"]["sigstoreKeys"]
    root = json.loads(signing.trust_root.read_text())

    def ders(pem_b64: str) -> list[bytes]:
        pems = base64.b64decode(pem_b64).decode().split("-----END CERTIFICATE-----")
        return [ssl_der(p + "-----END CERTIFICATE-----") for p in pems if "BEGIN" in p]

    for ours, theirs in [("certificateAuthorities", "certificateAuthorities"),
                         ("timestampAuthorities", "timestampAuthorities")]:
        assert [ders(a["certChain"]) for a in keys[ours]] == [
            [base64.b64decode(c["rawBytes"]) for c in a["certChain"]["certificates"]]
            for a in root[theirs]]
    for ours, theirs in [("tLogs", "tlogs"), ("ctLogs", "ctlogs")]:
        assert [key_der(t["publicKey"]) for t in keys[ours]] == [
            base64.b64decode(t["publicKey"]["rawBytes"]) for t in root[theirs]]


def ssl_der(pem: str) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(pem.strip() + "\n")


def key_der(pem_b64: str) -> bytes:
    body = base64.b64decode(pem_b64).decode().splitlines()
    return base64.b64decode("".join(line for line in body if "-----" not in line))
