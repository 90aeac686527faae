"""The inputs and outputs of the four actions, as their action.yml files declare them.

tests/action/test_metadata.py reads each action.yml and fails when it and this module disagree
(names, ``required``, defaults, outputs).
"""

from __future__ import annotations

from signer.action.runner import Input
from signer.oidc import DEFAULT_AUDIENCE
from signer.provenance import FLAG_FIELDS

DIGEST_EXAMPLE = "ghcr.io/acme/app@${{ steps.push.outputs.digest }}"


def input_name(flag: str) -> str:
    """A CLI flag's action input: ``source-repository-ref`` → ``source_repository_ref``."""
    return flag.replace("-", "_")


# Provenance inputs, one per provenance flag of the CLI, keyed by input name → field key.
PROVENANCE: dict[str, str] = {input_name(f.flag or ""): f.key for f in FLAG_FIELDS}
ISSUER_INPUT = "certificate_oidc_issuer"

_CONNECTION = (
    Input("api_url", required=True, example="https://signer.example.com"),
    Input("namespace", required=True, example="acme"),
    Input("enable_github_action_token", default="true", boolean=True),
    Input("api_key", secret=True, example="${{ secrets.SIGNER_API_KEY }}"),
    Input("audience", default=DEFAULT_AUDIENCE),
)

# Where the image's registry credentials come from besides Docker's config.json and
# GITHUB_TOKEN (signer.registry.credentials); the action passes them on as the CLI reads them.
_REGISTRY = (
    Input("registry_username"),
    Input("registry_password", secret=True, example="${{ secrets.REGISTRY_PASSWORD }}"),
    Input("allow_insecure_registry", default="false", boolean=True),
)
BUNDLE_SOURCES = ("service", "bundle", "registry")

SIGN: tuple[Input, ...] = (
    Input("artifact_name", required=True, example=DIGEST_EXAMPLE),
    *_CONNECTION,
    *(Input(name) for name in PROVENANCE),
    Input("bundle_path"),
    Input("github_token", secret=True, example="${{ github.token }}"),
    Input("push_to_registry", default="false", boolean=True),
    *_REGISTRY,
)

VERIFY: tuple[Input, ...] = (
    Input("artifact_name", required=True, example=DIGEST_EXAMPLE),
    # Offline verification (bundle_path + trust_root) needs no service: checked in the command.
    Input("api_url", example="https://signer.example.com"),
    *_CONNECTION[1:],
    *(Input(name, required=name == ISSUER_INPUT,
            example="https://token.actions.githubusercontent.com") for name in PROVENANCE),
    Input("certificate_identity"),
    Input("certificate_identity_regexp"),
    Input("trust_root"),
    Input("bundle_path"),
    Input("bundle_source", example="registry"),
    *_REGISTRY,
    Input("predicate_type", example="https://slsa.dev/provenance/v1"),
)

REVOKE: tuple[Input, ...] = (
    Input("artifact_name", required=True, example="ghcr.io/acme/app"),
    *_CONNECTION,
    Input("source_repository_ref", required=True, example="refs/tags/v1.2.3"),
    Input("reason"),
)

ATTEST: tuple[Input, ...] = (
    # One of artifact_name (by digest) or artifact_path (a file): checked in the command.
    Input("artifact_name", example=DIGEST_EXAMPLE),
    Input("artifact_path", example="dist/app.tar.gz"),
    *_CONNECTION,
    Input("predicate_type", example="https://spdx.dev/Document"),
    Input("predicate_path", example="sbom.spdx.json"),
    Input("bundle_path"),
    Input("github_token", secret=True, example="${{ github.token }}"),
    Input("push_to_registry", default="false", boolean=True),
    *_REGISTRY,
)

INPUTS: dict[str, tuple[Input, ...]] = {"sign": SIGN, "verify": VERIFY, "revoke": REVOKE,
                                        "attest": ATTEST}
OUTPUTS: dict[str, tuple[str, ...]] = {
    "sign": ("signature_id", "certificate", "bundle_path", "referrer_digest"),
    "attest": ("attestation_id", "bundle_path", "referrer_digest"),
    "verify": ("verified",),
    "revoke": ("revoked_count",),
}
