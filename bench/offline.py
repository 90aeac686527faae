"""Offline bundle verification per second on one core: what a release gate does per artifact.

A real bundle from the service (through the real signing flow) and the service's
``trusted_root.json`` are verified in-process the way ``signer artifact verify --bundle
--trust-root`` does (``signer.operations.verify``: read, parse, every step), and once more
from an already parsed bundle (``Verifier.verify``: the checks alone). CPU time of this one
process, so other work on the machine does not count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.timing import per_call_seconds
from signer import bundle, operations, trust
from signer.artifact import parse_ref
from signer.verification import Verifier, from_flags


@dataclass(frozen=True)
class Offline:
    full_seconds: float  # read + parse + verify, as the CLI does
    verify_seconds: float  # the verification steps on a parsed bundle

    @property
    def full_per_second(self) -> float:
        return 1 / self.full_seconds

    @property
    def verify_per_second(self) -> float:
        return 1 / self.verify_seconds


def measure(bundle_json: str, trust_root_json: bytes, name: str, issuer: str, identity: str,
            budget: float = 2.0) -> Offline:
    ref = parse_ref(name)
    material = trust.parse(trust_root_json)
    with tempfile.TemporaryDirectory(prefix="signer-bench-offline-") as tmp:
        path = Path(tmp) / "artifact.sigstore.json"
        path.write_text(bundle_json)

        def full() -> None:
            report = operations.verify(ref, material, issuer, identity, bundle_path=path)
            if not report.ok:
                raise AssertionError(f"the benchmark's bundle does not verify: "
                                     f"{report.explain()}")

        artifact = bundle.parse(bundle_json)
        verifier = Verifier(material)
        policy = from_flags(issuer, identity, None, {})
        full()
        return Offline(per_call_seconds(full, budget / 2),
                       per_call_seconds(lambda: verifier.verify(artifact, ref.digest_bytes,
                                                                policy), budget / 2))


def loop(bundle_path: Path, trust_root_path: Path, name: str, issuer: str, identity: str,
         seconds: float) -> int:
    """Verify the bundle again and again for ``seconds`` (for the profiler); returns count."""
    ref = parse_ref(name)
    material = trust.read(trust_root_path)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        report = operations.verify(ref, material, issuer, identity, bundle_path=bundle_path)
        assert report.ok, report.explain()
        count += 1
    return count


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="offline verification in a loop (profiling)")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("trust_root", type=Path)
    parser.add_argument("name")
    parser.add_argument("issuer")
    parser.add_argument("identity")
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    print(loop(options.bundle, options.trust_root, options.name, options.issuer,
               options.identity, options.seconds))
