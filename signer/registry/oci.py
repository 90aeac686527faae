"""The OCI wire formats signer writes and reads: descriptors, the artifact manifest of a
bundle, and the image index of referrers. Parsed and built here only; no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from signer.errors import UsageError
from signer.sigstore_json import BUNDLE_MEDIA_TYPES

MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES: Final = (MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST)
EMPTY: Final = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB: Final = b"{}"
BUNDLE_ARTIFACT: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
# artifactType / layer media types that carry a Sigstore bundle (v0.1-v0.3, both spellings).
BUNDLE_TYPES: Final = frozenset((*BUNDLE_MEDIA_TYPES, BUNDLE_ARTIFACT))
# cosign's bundle spec: what a bundle holds, its predicate, and when it was made.
CONTENT: Final = "dev.sigstore.bundle.content"
PREDICATE_TYPE: Final = "dev.sigstore.bundle.predicateType"
CREATED: Final = "org.opencontainers.image.created"
# The OCI spec asks registries to accept manifests of at least 4 MiB; nothing bigger is read.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, media_type: str, data: bytes, **kwargs: Any) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data), **kwargs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise UsageError(f"{where} holds a descriptor that is not an object.")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str) \
                or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UsageError(f"{where} holds a descriptor without mediaType, digest or size.")
        annotations = value.get("annotations") or {}
        artifact_type = value.get("artifactType")
        return cls(media_type, digest, size,
                   artifact_type if isinstance(artifact_type, str) else None,
                   {str(k): str(v) for k, v in annotations.items()}
                   if isinstance(annotations, dict) else {})

    @property
    def is_bundle(self) -> bool:
        return self.artifact_type in BUNDLE_TYPES


def empty_config() -> Descriptor:
    return Descriptor.of(EMPTY, EMPTY_BLOB)


def canonical(value: Any) -> bytes:
    """One serialization per manifest, so the same content has the same digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def bundle_manifest(bundle: Descriptor, subject: Descriptor, annotations: Mapping[str, str]
                    ) -> bytes:
    """cosign's bundle layout: artifactType, empty config, one bundle layer, the subject."""
    return canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": BUNDLE_ARTIFACT,
        "config": empty_config().to_json(),
        "layers": [bundle.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": dict(annotations),
    })


@dataclass(frozen=True)
class Manifest:
    """An image manifest as read: what a referrer says it is and refers to."""

    media_type: str
    artifact_type: str | None
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None
    annotations: Mapping[str, str]

    @property
    def bundle_layer(self) -> Descriptor | None:
        bundles = [layer for layer in self.layers if layer.media_type in BUNDLE_TYPES]
        return bundles[0] if len(bundles) == 1 else None


def _object(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise UsageError(f"{where} is not JSON.") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where} is not a JSON object.")
    return value


def parse_manifest(data: bytes, where: str) -> Manifest:
    value = _object(data, where)
    layers = value.get("layers")
    if not isinstance(layers, list):
        raise UsageError(f"{where} is not an image manifest (no layers).")
    config = Descriptor.from_json(value.get("config"), where)
    artifact_type = value.get("artifactType")
    annotations = value.get("annotations") or {}
    return Manifest(
        str(value.get("mediaType") or MANIFEST),
        artifact_type if isinstance(artifact_type, str) else config.media_type,
        config,
        tuple(Descriptor.from_json(layer, where) for layer in layers),
        Descriptor.from_json(value["subject"], where) if value.get("subject") else None,
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def parse_index(data: bytes, where: str) -> list[Descriptor]:
    value = _object(data, where)
    manifests = value.get("manifests")
    if not isinstance(manifests, list):
        raise UsageError(f"{where} is not an image index (no manifests).")
    return [Descriptor.from_json(m, where) for m in manifests]


def build_index(manifests: list[Descriptor]) -> bytes:
    return canonical({"schemaVersion": 2, "mediaType": INDEX,
                      "manifests": [m.to_json() for m in manifests]})


def merge(index: list[Descriptor], added: Descriptor) -> list[Descriptor]:
    """The index with ``added`` in it once (entries keyed by digest; order kept)."""
    return [m for m in index if m.digest != added.digest] + [added]
