"""Artifact references: ``registry/repo/name@sha256:<64 hex>``, or a local file's digest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from signer.errors import UsageError

# Long enough for any registry path; short enough to index and to show on one line.
MAX_NAME_LENGTH = 512
DIGEST_ALGORITHM = "sha256"
_DIGEST = re.compile(r"[0-9a-f]{64}")
# Registry references and file paths: no spaces, no control characters, no shell meta.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/:]*")

_HOW_TO_DIGEST = (
    "Sign and verify by digest, e.g. 'ghcr.io/acme/app@sha256:<64 hex>'. Get it with "
    "'docker buildx imagetools inspect IMAGE:TAG --format \"{{json .Manifest.Digest}}\"' "
    "or 'crane digest IMAGE:TAG', or sign a local file with --file PATH."
)


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A name without its digest, and the lowercase hex SHA-256 digest."""

    name: str
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{DIGEST_ALGORITHM}:{self.digest}"

    @property
    def digest_bytes(self) -> bytes:
        return bytes.fromhex(self.digest)

    @property
    def safe_filename(self) -> str:
        """A file name for this artifact's bundle: ``<name-safe>.sigstore.json``."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(self)).strip("._")
        return f"{safe}.sigstore.json"


def check_name(name: str) -> str:
    """A bare artifact name (no digest), as revocation takes it."""
    return check_name_in(name, name)


def check_name_in(name: str, original: str) -> str:
    if not name:
        raise UsageError(f"The artifact name in '{_shown(original)}' is empty.", _HOW_TO_DIGEST)
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"The artifact name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}.",
            "Use the registry path of the image or the file's path, not its contents.",
        )
    if not _NAME.fullmatch(name) or any(p in ("..", ".") for p in name.split("/")):
        raise UsageError(
            f"The artifact name '{_shown(name)}' has characters or path segments that are not "
            "allowed.",
            "Use letters, digits and . _ - / : only, starting with a letter or digit, and no "
            "'.' or '..' path segments.",
        )
    return name


def _shown(text: str) -> str:
    """Echo user input safely: printable, and short."""
    printable = text.encode("unicode_escape").decode("ascii")
    return printable if len(printable) <= 80 else printable[:77] + "..."


def parse_ref(reference: str) -> ArtifactRef:
    """Parse ``name@sha256:<hex>``; tags and other digests are refused with the fix."""
    name, sep, digest_part = reference.rpartition("@")
    if not sep:
        raise UsageError(
            f"'{_shown(reference)}' has no digest: a tag or a bare name can move to other "
            "content, so it cannot be signed or verified.",
            _HOW_TO_DIGEST,
        )
    algorithm, colon, digest = digest_part.partition(":")
    if not colon or algorithm != DIGEST_ALGORITHM:
        raise UsageError(
            f"The digest '{_shown(digest_part)}' is not a sha256 digest.",
            "Use the image's sha256 digest: 'name@sha256:<64 lowercase hex>'.",
        )
    if not _DIGEST.fullmatch(digest):
        raise UsageError(
            f"The digest '{_shown(digest)}' is not 64 lowercase hexadecimal characters "
            f"(got {len(digest)}).",
            "Copy the full digest as the registry prints it, in lowercase.",
        )
    return ArtifactRef(check_name_in(name, reference), digest)


def digest_named(digest: str) -> ArtifactRef:
    """Content known by its digest alone (a Rekor entry names no artifact): named by the
    digest itself, ``sha256:<hex>@sha256:<hex>``."""
    return parse_ref(f"{DIGEST_ALGORITHM}:{digest}@{DIGEST_ALGORITHM}:{digest}")


def digest_file(path: Path) -> str:
    """The lowercase hex SHA-256 of a file, read in chunks."""
    try:
        with path.open("rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as exc:
        raise UsageError(
            f"Cannot read '{path}': {exc.strerror}.", "Pass an existing, readable file."
        ) from exc


def ref_for_file(path: Path, name: str | None = None) -> ArtifactRef:
    """A local file: its name (given, or the file's name) and its SHA-256."""
    digest = digest_file(path)
    if name and "@" in name:
        ref = parse_ref(name)
        if ref.digest != digest:
            raise UsageError(
                f"--name says {ref.digest[:12]}… but '{path}' has sha256 {digest[:12]}….",
                "Drop the digest from --name, or pass the file it belongs to.",
            )
        return ref
    return ArtifactRef(check_name_in(name or path.name, name or path.name), digest)
