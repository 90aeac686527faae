"""Every trust decision in one place: used by the CLI, the verify action and the service."""

from signer.verification.policy import Policy, from_flags
from signer.verification.verifier import (
    EntryResult,
    Report,
    Revocation,
    StepFailed,
    VerifiedSignature,
    Verifier,
    VerifyOptions,
    verify_entries,
)

__all__ = [
    "EntryResult",
    "Policy",
    "Report",
    "Revocation",
    "StepFailed",
    "VerifiedSignature",
    "Verifier",
    "VerifyOptions",
    "from_flags",
    "verify_entries",
]
