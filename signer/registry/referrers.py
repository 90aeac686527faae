"""Bundles next to the image: pushed as OCI 1.1 artifacts that refer to it, and found again.

Push: the bundle blob, the empty config, a manifest (cosign's bundle layout) whose
``subject`` is the image's manifest descriptor. A registry that serves the referrers API
indexes it by itself; on one that does not (distribution 2.8), the referrers tag schema is
kept: an image index at tag ``sha256-<hex>``, updated read-modify-write.

Without a conditional PUT two writers can overwrite each other: each reads the index, adds
its entry, writes. So after writing, a writer waits ``SETTLE_SECONDS`` - longer than any
writer takes from its read to its write (one local merge and one PUT) - and reads again.
Every writer that read before our write has written by then; every writer that reads later
sees our entry and keeps it. If our entry is gone, we merge into what is there and write
again, with a random pause so that writers fall out of step. Each round, the last writer
keeps its entry, so N writers finish within N rounds; ``MAX_ATTEMPTS`` bounds it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signer.bundle import MAX_BUNDLE_BYTES
from signer.errors import NotFound, Unavailable, UsageError
from signer.registry.client import RegistryClient
from signer.registry.oci import (
    BUNDLE_ARTIFACT,
    CONTENT,
    CREATED,
    EMPTY_BLOB,
    INDEX,
    MANIFEST,
    PREDICATE_TYPE,
    Descriptor,
    build_index,
    bundle_manifest,
    merge,
    parse_index,
    parse_manifest,
    sha256_digest,
)
from signer.sigstore_json import Bundle, WireError

SETTLE_SECONDS = 2.0
MAX_ATTEMPTS = 6
READ_ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
MAX_REFERRERS = 200  # more than any image carries; bounds what one listing reads
REFERRERS_API = "referrers API"


def tag_for(subject_digest: str) -> str:
    """The referrers tag schema: ``sha256:<hex>`` → tag ``sha256-<hex>``."""
    return subject_digest.replace(":", "-")


@dataclass(frozen=True)
class Pushed:
    digest: str  # the referrer manifest's digest
    subject: Descriptor
    index: str  # "referrers API", or "tag sha256-<hex>"
    added: bool  # False: it was there already

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "subject": self.subject.to_json(), "index": self.index,
                "added": self.added}


def push_bundle(client: RegistryClient, bundle_json: bytes, predicate_type: str | None = None,
                created: str | None = None, settle: float = SETTLE_SECONDS) -> Pushed:
    """Attach a bundle to ``client.image``. The same bundle twice is the same manifest and
    the same index entry: nothing is added."""
    image = client.image
    subject = client.manifest_descriptor(image.subject)
    if subject is None:
        raise NotFound(f"The image {image} is not in the registry, so nothing can refer to it.",
                       "Push the image first, and sign the digest the push printed.")
    if len(bundle_json) > MAX_BUNDLE_BYTES:
        raise UsageError(f"The bundle is {len(bundle_json)} bytes; a bundle is at most "
                         f"{MAX_BUNDLE_BYTES}.", "Push the .sigstore.json file signer wrote.")
    model = _bundle_model(bundle_json)
    annotations = {CONTENT: "dsse-envelope" if model.dsse_envelope is not None
                   else "message-signature",
                   CREATED: created or _created(model)}
    if predicate_type:
        annotations[PREDICATE_TYPE] = predicate_type
    client.push_blob(EMPTY_BLOB)
    client.push_blob(bundle_json)
    manifest = bundle_manifest(Descriptor.of(BUNDLE_ARTIFACT, bundle_json), subject, annotations)
    digest = sha256_digest(manifest)
    existed = client.manifest_descriptor(digest) is not None
    response = client.put_manifest(digest, manifest, MANIFEST)
    entry = Descriptor(MANIFEST, digest, len(manifest), BUNDLE_ARTIFACT, annotations)
    if response.headers.get("OCI-Subject") == subject.digest \
            or client.referrers(subject.digest) is not None:
        return Pushed(digest, subject, REFERRERS_API, not existed)
    added = _add_to_tag_index(client, tag_for(subject.digest), entry, settle)
    return Pushed(digest, subject, f"tag {tag_for(subject.digest)}", added)


def _add_to_tag_index(client: RegistryClient, tag: str, entry: Descriptor, settle: float
                      ) -> bool:
    added = False
    for attempt in range(MAX_ATTEMPTS):
        current = _tag_index(client, tag)
        if not any(m.digest == entry.digest for m in current):
            try:
                client.put_manifest(tag, build_index(merge(current, entry)), INDEX)
                added = True
            except Unavailable:
                pass  # a write racing another one: the check below decides
        time.sleep(settle)
        if any(m.digest == entry.digest for m in _tag_index(client, tag)):
            return added
        time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))  # noqa: S311
    raise Unavailable(f"The referrers index {client.where}:{tag} kept losing signer's entry "
                      f"({MAX_ATTEMPTS} attempts): other writers overwrite it.",
                      "Try again; the artifact manifest itself is pushed.")


def _tag_index(client: RegistryClient, tag: str) -> list[Descriptor]:
    # distribution's filesystem storage rewrites a tag's link in place: a read racing a
    # write sees an empty link and answers 500. Such a read is tried again.
    for attempt in range(READ_ATTEMPTS):
        try:
            got = client.get_manifest(tag)
            break
        except Unavailable:
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(BACKOFF_SECONDS * (attempt + 1) * random.uniform(0.5, 1))  # noqa: S311
    if got is None:
        return []
    media_type, body = got
    if media_type != INDEX:
        raise UsageError(f"The tag {client.where}:{tag} holds {media_type[:60]!r}, not the "
                         "image index of the referrers tag schema.",
                         "Remove the tag; it is reserved for the image's referrers.")
    return parse_index(body, f"{client.where}:{tag}")


def _bundle_model(bundle_json: bytes) -> Bundle:
    try:
        return Bundle.from_json(bundle_json)
    except WireError as exc:
        raise UsageError(f"The bundle to push is not a Sigstore bundle: {exc}.") from None


def _created(model: Bundle) -> str:
    """When the bundle was made, from the bundle itself, so the same bundle always makes
    the same manifest: the log's integration time, else the RFC 3161 time."""
    material = model.verification_material
    for entry in material.tlog_entries:
        if entry.integrated_time is not None:
            return _rfc3339(datetime.fromtimestamp(int(entry.integrated_time), UTC))
    tsd = material.timestamp_verification_data
    if tsd is not None and tsd.rfc3161_timestamps:
        from rfc3161_client import decode_timestamp_response

        raw = tsd.rfc3161_timestamps[0].signed_timestamp
        return _rfc3339(decode_timestamp_response(raw).tst_info.gen_time)
    raise UsageError("The bundle has neither a log entry nor a timestamp to date it by.",
                     "Pass created= to push_bundle.")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attached:
    """One referrer of the image; for a Sigstore bundle, its bytes (or why there are none)."""

    digest: str
    artifact_type: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    bundle: bytes | None = None
    error: str | None = None

    @property
    def is_bundle(self) -> bool:
        return Descriptor("", "", 0, self.artifact_type).is_bundle

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "artifact_type": self.artifact_type,
                "predicate_type": self.annotations.get(PREDICATE_TYPE),
                "content": self.annotations.get(CONTENT),
                "created": self.annotations.get(CREATED), "error": self.error}


@dataclass(frozen=True)
class Referrers:
    index: str  # where they were found: "referrers API" or "tag sha256-<hex>"
    attached: tuple[Attached, ...]


def referrers(client: RegistryClient, fetch_bundles: bool = True) -> Referrers:
    """Everything that refers to ``client.image``; Sigstore bundles read and checked to
    refer to this image. A referrer that cannot be read is listed with the reason."""
    subject = client.image.subject
    body = client.referrers(subject)
    where = REFERRERS_API
    if body is None:
        where = f"tag {tag_for(subject)}"
        descriptors = _tag_index(client, tag_for(subject))
    else:
        descriptors = parse_index(body, f"{client.where} {where}")
    out = []
    for descriptor in descriptors[:MAX_REFERRERS]:
        try:
            out.append(_read(client, descriptor, fetch_bundles))
        except (UsageError, NotFound) as exc:
            out.append(Attached(descriptor.digest, descriptor.artifact_type,
                                descriptor.annotations, error=exc.detail))
    return Referrers(where, tuple(out))


def _read(client: RegistryClient, descriptor: Descriptor, fetch_bundles: bool) -> Attached:
    got = client.get_manifest(descriptor.digest)
    if got is None:
        raise NotFound(f"the index names {descriptor.digest}, which is not in the registry")
    if got[0] not in ("", MANIFEST):
        return Attached(descriptor.digest, descriptor.artifact_type or got[0],
                        descriptor.annotations)
    manifest = parse_manifest(got[1], descriptor.digest)
    attached = Attached(descriptor.digest, manifest.artifact_type,
                        {**descriptor.annotations, **manifest.annotations})
    if not attached.is_bundle or not fetch_bundles:
        return attached
    if manifest.subject is None or manifest.subject.digest != client.image.subject:
        shown = manifest.subject.digest if manifest.subject else "none"
        return Attached(attached.digest, attached.artifact_type, attached.annotations,
                        error=f"the manifest refers to {shown}, not to this image")
    layer = manifest.bundle_layer
    if layer is None:
        return Attached(attached.digest, attached.artifact_type, attached.annotations,
                        error="the manifest has not exactly one bundle layer")
    if layer.size > MAX_BUNDLE_BYTES:
        return Attached(attached.digest, attached.artifact_type, attached.annotations,
                        error=f"the bundle is {layer.size} bytes, over {MAX_BUNDLE_BYTES}")
    bundle = client.get_blob(layer.digest, MAX_BUNDLE_BYTES)
    return Attached(attached.digest, attached.artifact_type, attached.annotations, bundle)
