"""Where an image lives: a registry host, a repository in it, and the image's digest.

``ghcr.io/acme/app@sha256:<hex>`` names registry ``ghcr.io`` and repository ``acme/app``;
a first path segment without ``.`` or ``:`` (and not ``localhost``) is a Docker Hub
repository, as Docker reads it. Plain http is for loopback registries only, unless allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from signer.artifact import ArtifactRef
from signer.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
INSECURE_ENV = "SIGNER_ALLOW_INSECURE_REGISTRY"
# The distribution spec's repository name grammar (path components of lowercase words).
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # as written: host[:port]
    repository: str
    digest: str  # lowercase hex SHA-256 of the image's manifest

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def host(self) -> str:
        """The host without its port (brackets of an IPv6 literal removed)."""
        host = self.registry
        if host.startswith("["):
            return host[1:host.index("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    @property
    def subject(self) -> str:
        return f"sha256:{self.digest}"

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@sha256:{self.digest}"


def image_ref(ref: ArtifactRef) -> ImageRef:
    """The registry and repository of a signed name; a name that is no image is refused."""
    first, slash, rest = ref.name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, ref.name
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or not all(_COMPONENT.fullmatch(c) for c in repository.split("/")):
        raise UsageError(
            f"'{ref.name}' is not an image in a registry: the repository '{repository[:80]}' "
            "is not lowercase path components (letters, digits, '.', '_', '-').",
            "Name the image as REGISTRY/REPOSITORY@sha256:<digest>, e.g. "
            "ghcr.io/acme/app@sha256:<64 hex>.")
    return ImageRef(registry, repository, ref.digest)


def is_loopback(host: str) -> bool:
    """Loopback by the name as written: ``localhost`` or an address in 127.0.0.0/8 or ::1.
    A host name that merely resolves to loopback is not trusted to stay there."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_allowed(image: ImageRef, allow: bool | None = None) -> bool:
    """Plain http: for loopback, or when the user allowed it (flag or environment)."""
    if allow is None:
        allow = os.environ.get(INSECURE_ENV, "").lower() in ("1", "true", "yes")
    return allow or is_loopback(image.host)
