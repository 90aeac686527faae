"""signer's trust root in the form deploy-time checkers take it.

sigstore policy-controller reads a ``TrustRoot`` (policy.sigstore.dev/v1alpha1) whose
``spec.sigstoreKeys`` lists the same CAs, TSAs, transparency logs and CT logs as
``trusted_root.json``, each certificate chain and key as PEM, base64-encoded (Go ``[]byte``
in JSON). Kubernetes accepts the JSON manifest written here as it accepts YAML.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from signer.sigstore_json import TransparencyLogInstance
from signer.trust import Authority, TrustMaterial


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def _authority(authority: Authority, common_name: str, uri: str) -> dict[str, Any]:
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in authority.chain)  # root last
    return {"subject": {"organization": "signer", "commonName": common_name},
            "uri": uri, "certChain": _b64(pem)}


def _log(instance: TransparencyLogInstance) -> dict[str, Any]:
    der = instance.public_key.raw_bytes or b""
    pem = load_der_public_key(der).public_bytes(Encoding.PEM,
                                                PublicFormat.SubjectPublicKeyInfo)
    return {"baseURL": instance.base_url, "hashAlgorithm": "sha-256", "publicKey": _b64(pem)}


def policy_controller_trust_root(trust: TrustMaterial, name: str, api: str) -> str:
    """A ``TrustRoot`` manifest for sigstore policy-controller, from signer's trust root."""
    manifest = {
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": name},
        "spec": {"sigstoreKeys": {
            "certificateAuthorities": [_authority(a, "signer CA", api) for a in trust.cas],
            "timestampAuthorities": [_authority(a, "signer TSA", f"{api}/v1/timestamp")
                                     for a in trust.tsas],
            "tLogs": [_log(t) for t in trust.tlogs],
            "ctLogs": [_log(c) for c in trust.ctlogs],
        }},
    }
    return json.dumps(manifest, indent=2)
