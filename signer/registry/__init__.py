"""Signatures next to the image: bundles pushed to and read from OCI registries.

``reference`` (where an image lives), ``credentials`` (Docker's config.json, helpers,
GITHUB_TOKEN), ``client`` (HTTP and the distribution auth flow), ``oci`` (manifests and
indexes), ``referrers`` (push a bundle, find what refers to an image).
"""

from signer.registry.client import RegistryClient
from signer.registry.reference import ImageRef, image_ref
from signer.registry.referrers import Attached, Pushed, Referrers, push_bundle, referrers

__all__ = ["Attached", "ImageRef", "Pushed", "Referrers", "RegistryClient", "image_ref",
           "push_bundle", "referrers"]
