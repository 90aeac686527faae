"""Offline verification per bundle shape, ours beside sigstore-python's, in one run.

The bundles are the static assets of ``tests/assets`` (made with the service's own CA, TSA
and logs): a v1 message signature (Rekor v1 hashedrekord 0.0.1, promise and proof), a v1
DSSE attestation (dsse 0.0.1), a Rekor v2 message signature (hashedrekord 0.0.2, TSA time)
and a Rekor v2 attestation logged as sigstore-python 4.x does (hashedrekord over the PAE).
Each is parsed once; what is timed is the verification of the parsed bundle (every step, no
identity policy for the reference, ours with the asset's issuer and identity), CPU time of
this process, so on one core. ``python -m bench.shapes`` prints the table for
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.timing import per_call_seconds
from signer import bundle, trust
from signer.verification import Verifier, from_flags

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SHAPES = {  # shape → (bundle, trust root, predicate type)
    "v1 message signature": ("bundle-good.sigstore.json", "trusted_root-good.json", None),
    "v1 DSSE (dsse 0.0.1)": ("corpus/dsse-rekor-v1-dsse.sigstore.json",
                             "corpus/trusted_root.json", SLSA_V1),
    "v2 message signature": ("corpus/rekor-v2-hashedrekord.sigstore.json",
                             "corpus/trusted_root.json", None),
    "v2 DSSE (as hashedrekord)": ("corpus/rekor-v2-dsse-as-hashedrekord.sigstore.json",
                                  "corpus/trusted_root.json", SLSA_V1),
}


@dataclass(frozen=True)
class Row:
    shape: str
    ours_seconds: float
    reference_seconds: float


def ours(name: str, root: str, predicate_type: str | None) -> Callable[[], object]:
    meta = json.loads((ASSETS / "verification.meta.json").read_text())
    artifact = bundle.read(ASSETS / name)
    verifier = Verifier(trust.read(ASSETS / root))
    policy = from_flags(meta["issuer"], meta["identity"])
    digest = bytes.fromhex(meta["digest"])
    return lambda: verifier.verify(artifact, digest, policy, predicate_type=predicate_type)


def reference(name: str, root: str, predicate_type: str | None) -> Callable[[], object]:
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier as ReferenceVerifier
    from sigstore.verify.policy import UnsafeNoOp
    from sigstore_models.common.v1 import HashAlgorithm

    meta = json.loads((ASSETS / "verification.meta.json").read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        file.write((ASSETS / root).read_text())
        file.flush()
        verifier = ReferenceVerifier(trusted_root=TrustedRoot.from_file(file.name))
    loaded = Bundle.from_json((ASSETS / name).read_bytes())
    policy = UnsafeNoOp()
    if predicate_type is not None:
        return lambda: verifier.verify_dsse(loaded, policy)
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(meta["digest"]))
    return lambda: verifier.verify_artifact(hashed, loaded, policy)


def measure(budget: float = 2.0) -> list[Row]:
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging
        logging.getLogger("sigstore").setLevel(logging.ERROR)
        for shape, (name, root, predicate_type) in SHAPES.items():
            rows.append(Row(shape,
                            per_call_seconds(ours(name, root, predicate_type), budget / 2),
                            per_call_seconds(reference(name, root, predicate_type), budget / 2)))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| Bundle shape | signer | sigstore-python | ratio |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.shape} | {1 / r.ours_seconds:,.0f}/s ({r.ours_seconds * 1e3:.2f} ms) "
                     f"| {1 / r.reference_seconds:,.0f}/s ({r.reference_seconds * 1e3:.2f} ms) "
                     f"| {r.reference_seconds / r.ours_seconds:.1f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
