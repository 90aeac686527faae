"""Names, credentials and manifests, without a registry."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from signer.artifact import parse_ref
from signer.errors import UsageError
from signer.registry import credentials, oci
from signer.registry.reference import image_ref, insecure_allowed, is_loopback

HEX = "a" * 64


@pytest.mark.parametrize(("name", "registry", "repository"), [
    ("ghcr.io/acme/app", "ghcr.io", "acme/app"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app"),
    ("localhost/team/app", "localhost", "team/app"),
    ("acme/app", "docker.io", "acme/app"),
    ("nginx", "docker.io", "library/nginx"),
])
def test_image_names_read_as_docker_reads_them(name: str, registry: str, repository: str
                                               ) -> None:
    image = image_ref(parse_ref(f"{name}@sha256:{HEX}"))
    assert (image.registry, image.repository, image.digest) == (registry, repository, HEX)


def test_a_name_that_is_no_repository_is_refused() -> None:
    with pytest.raises(UsageError, match="not lowercase path components"):
        image_ref(parse_ref(f"ghcr.io/Acme/App@sha256:{HEX}"))


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
    ("registry.localhost", True), ("10.0.0.1", False), ("vm", False),
    ("127.0.0.1.nip.io", False), ("ghcr.io", False),
])
def test_loopback_is_decided_by_the_name_as_written(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_elsewhere_needs_the_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    image = image_ref(parse_ref(f"registry.internal:5000/app@sha256:{HEX}"))
    monkeypatch.delenv("SIGNER_ALLOW_INSECURE_REGISTRY", raising=False)
    assert not insecure_allowed(image)
    assert insecure_allowed(image, True)
    monkeypatch.setenv("SIGNER_ALLOW_INSECURE_REGISTRY", "1")
    assert insecure_allowed(image)


def config(tmp_path: Path, value: object) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(value))
    return {"DOCKER_CONFIG": str(tmp_path)}


def test_credentials_from_auths_identitytoken_and_github_token(tmp_path: Path) -> None:
    auth = base64.b64encode(b"bot:pa:ss").decode()
    env = config(tmp_path, {"auths": {"https://r.example": {"auth": auth},
                                      "t.example": {"identitytoken": "refresh-me"}}})
    found = credentials.lookup("r.example", env)
    assert found is not None and (found.username, found.password) == ("bot", "pa:ss")
    assert "pa:ss" not in repr(found) and "config.json" in found.source
    token = credentials.lookup("t.example", env)
    assert token is not None and token.identity_token == "refresh-me"
    assert "refresh-me" not in repr(token)
    assert credentials.lookup("ghcr.io", env) is None
    ghcr = credentials.lookup("ghcr.io", {**env, "GITHUB_TOKEN": "ghs_x"})
    assert ghcr is not None and (ghcr.username, ghcr.password) == ("x-access-token", "ghs_x")
    explicit = credentials.lookup("r.example", {**env, "SIGNER_REGISTRY_USERNAME": "u",
                                                "SIGNER_REGISTRY_PASSWORD": "p"})
    assert explicit is not None and explicit.username == "u"


def test_docker_hub_is_found_under_its_v1_key(tmp_path: Path) -> None:
    auth = base64.b64encode(b"me:pw").decode()
    env = config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    found = credentials.lookup("docker.io", env)
    assert found is not None and found.username == "me"


def test_broken_config_entries_say_what_to_do(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example": {"auth": "bm90IGEgcGFpcg=="}}})
    with pytest.raises(UsageError, match="not base64 of user:password"):
        credentials.lookup("r.example", env)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot be read as JSON"):
        credentials.lookup("r.example", {"DOCKER_CONFIG": str(tmp_path)})


def test_the_bundle_manifest_is_cosigns_layout_and_deterministic() -> None:
    subject = oci.Descriptor(oci.MANIFEST, "sha256:" + HEX, 123)
    layer = oci.Descriptor.of(oci.BUNDLE_ARTIFACT, b"{}")
    body = oci.bundle_manifest(layer, subject, {oci.CONTENT: "message-signature"})
    assert body == oci.bundle_manifest(layer, subject, {oci.CONTENT: "message-signature"})
    manifest = oci.parse_manifest(body, "test")
    assert manifest.artifact_type == oci.BUNDLE_ARTIFACT
    assert manifest.config.to_json() == {
        "mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
    assert manifest.subject == subject and manifest.bundle_layer == layer


def test_an_index_entry_is_kept_once() -> None:
    a = oci.Descriptor(oci.MANIFEST, "sha256:" + "1" * 64, 1, oci.BUNDLE_ARTIFACT)
    b = oci.Descriptor(oci.MANIFEST, "sha256:" + "2" * 64, 1, oci.BUNDLE_ARTIFACT)
    assert oci.merge(oci.merge([a], b), b) == [a, b]
    assert oci.parse_index(oci.build_index([a, b]), "test") == [a, b]
