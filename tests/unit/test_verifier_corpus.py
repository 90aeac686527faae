"""The release gate on every bundle shape: our verdict and failing step per asset, and
sigstore-python's verdict on the same asset, offline.

Assets: ``tests/assets/corpus`` (made by ``make_verification_assets.py`` with the service's own
CA, TSA and logs, and a Rekor v2-style log with an Ed25519 key; ``corpus/README.md``) and real
bundles from Sigstore's staging and production instances and GitHub's (the
``sigstore-python``, ``sigstore-go`` and ``model-transparency`` folders; their READMEs cite
repository, path and commit). Where sigstore-python's verdict differs from ours, ``WHY`` says
why, and ours is the one the specification asks for.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from signer import bundle, trust
from signer.key_details import PublicKeyTypes
from signer.verification import StepFailed, VerifiedSignature, Verifier, from_flags

ASSETS = Path(__file__).resolve().parents[1] / "assets"
META = json.loads((ASSETS / "verification.meta.json").read_text())
DIGEST = bytes.fromhex(META["digest"])
SLSA_V1 = "https://slsa.dev/provenance/v1"
CORPUS_ROOT = "corpus/trusted_root.json"
STAGING_ROOT = "sigstore-python/staging-but-sign-with-rekor-v2.json"
PUBLIC_GOOD_ROOT = "sigstore-go/trusted-root-public-good.json"
GITHUB_ROOT = "sigstore-go/trusted-root-github-staging.json"
GITHUB_WHL = bytes.fromhex("c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201")
NPM_SHA512 = bytes.fromhex(
    "76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6"
    "b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751")


@dataclass(frozen=True)
class Case:
    bundle: str
    root: str
    step: int | None  # None: verifies
    because: str = ""
    digest: bytes = DIGEST
    issuer: str | None = META["issuer"]
    identity: str | None = META["identity"]
    predicate_type: str | None = None
    key: str | None = None
    digests: dict[str, bytes] = field(default_factory=dict)
    regexp: str | None = None
    provenance: dict[str, str] = field(default_factory=dict)
    reference: bool | None = None  # sigstore-python's verdict; None: it cannot say
    why: str = ""  # why sigstore-python's verdict differs from ours

    @property
    def id(self) -> str:
        return self.bundle.replace(".sigstore.json", "").replace(".json", "")


# Why sigstore-python (4.x) says otherwise, where it does.
NO_KEYS = "sigstore-python verifies only certificate bundles ('expected certificate in bundle')"
NO_SUBJECTS = ("sigstore-python's verify_dsse checks the envelope and returns the payload; "
               "matching the artifact with the statement's subjects is left to the caller")
NO_V2_DSSE = "sigstore-python does not read Rekor v2 dsse 0.0.2 entries (it logs DSSE as a " \
             "hashedrekord over the PAE, and refuses 'dsse/0.0.2')"
NO_V1_INTOTO_TIME = ("sigstore-python takes a v1 integrated time only from hashedrekord and "
                     "dsse 0.0.1 entries; the promise signs intoto 0.0.2's just the same")
NO_LOGLESS = ("sigstore-python refuses a trust root without transparency logs ('trusted root "
              "contains no transparency log instances'): GitHub's private instance logs "
              "nothing, and its bundles carry only an RFC 3161 timestamp")
SKIPS_BAD_TIMESTAMPS = ("sigstore-python skips a timestamp that does not verify and goes on with "
                        "the others (here the promised integrated time); a bundle that carries "
                        "a false time claim is refused here, as sigstore-go does")
PROOF_REQUIRED = ("sigstore-python's bundle model requires inclusionProof even in v0.1, whose "
                  "specification makes the promise enough")
NO_PROMISE_TIME = ("the entry has a proof and no promise: the proof does not cover the "
                   "integrated time (the leaf is the body alone), so nothing says when it was "
                   "signed. sigstore-go takes the integrated time anyway; sigstore-python agrees "
                   "with us")

CASES = [
    # -- signer's own: (1) shapes and DSSE ---------------------------------------------------
    Case("corpus/dsse-rekor-v1-dsse.sigstore.json", CORPUS_ROOT, None,
         predicate_type=SLSA_V1, reference=True),
    Case("corpus/dsse-rekor-v1-intoto.sigstore.json", CORPUS_ROOT, None,
         predicate_type=SLSA_V1, reference=False, why=NO_V1_INTOTO_TIME),
    Case("corpus/dsse-rekor-v1-dsse.sigstore.json", CORPUS_ROOT, 1, "pass --predicate-type",
         reference=True, why="sigstore-python has no notion of predicate type"),
    Case("corpus/dsse-rekor-v1-dsse.sigstore.json", CORPUS_ROOT, 1,
         "predicate type is 'https://slsa.dev/provenance/v1', not",
         predicate_type="https://example.com/other", reference=True,
         why="sigstore-python has no notion of predicate type"),
    Case("corpus/dsse-subject-is-another-artifact.sigstore.json", CORPUS_ROOT, 1,
         "is not a subject of the statement", predicate_type=SLSA_V1, reference=True,
         why=NO_SUBJECTS),
    Case("corpus/dsse-signature-over-payload-not-pae.sigstore.json", CORPUS_ROOT, 7,
         "over PAE", predicate_type=SLSA_V1, reference=False),
    Case("corpus/v02-chain-proof-and-promise.sigstore.json", CORPUS_ROOT, None,
         reference=True),
    Case("corpus/v01-chain-promise-only.sigstore.json", CORPUS_ROOT, None, reference=False,
         why=PROOF_REQUIRED),
    # -- (2) log entries -----------------------------------------------------------------------
    Case("corpus/rekor-v2-hashedrekord.sigstore.json", CORPUS_ROOT, None, reference=True),
    Case("corpus/rekor-v2-dsse-as-hashedrekord.sigstore.json", CORPUS_ROOT, None,
         predicate_type=SLSA_V1, reference=True),
    Case("corpus/rekor-v2-dsse.sigstore.json", CORPUS_ROOT, None, predicate_type=SLSA_V1,
         reference=False, why=NO_V2_DSSE),
    Case("corpus/rekor-v2-without-timestamp.sigstore.json", CORPUS_ROOT, 2,
         "nothing says when it was signed", reference=False),
    Case("corpus/v01-without-inclusion-promise.sigstore.json", CORPUS_ROOT, 6,
         "a v0.1 bundle needs one", reference=False),
    # -- (3) checkpoints -------------------------------------------------------------------
    Case("corpus/rekor-v2-checkpoint-cosigned-by-witnesses.sigstore.json", CORPUS_ROOT, None,
         reference=True),
    Case("corpus/rekor-v2-checkpoint-signed-only-by-a-witness.sigstore.json", CORPUS_ROOT, 6,
         "note has no signature by", reference=False),
    Case("corpus/rekor-v2-checkpoint-without-root-hash.sigstore.json", CORPUS_ROOT, 6,
         "needs origin, size and root hash lines", reference=False),
    # -- (4) time ------------------------------------------------------------------------------
    Case("corpus/integrated-time-in-the-future.sigstore.json", CORPUS_ROOT, 2,
         "is in the future", reference=False),
    Case("corpus/timestamp-outside-tsa-certificate-validity.sigstore.json",
         "corpus/trusted_root-with-expired-tsa.json", 2, "outside its TSA certificate's validity",
         reference=True, why=SKIPS_BAD_TIMESTAMPS),
    Case("sigstore-python/bundle.txt.late_timestamp.sigstore", STAGING_ROOT, 3,
         "is outside the leaf's validity", digest=bytes.fromhex(
             "802dd60ff88333802f2585e73043bd21c341285e1992fe5b31755e1cadeae30e"),
         issuer="https://accounts.google.com", identity=None, reference=False),
    # -- (5) SCTs -----------------------------------------------------------------------------
    Case("corpus/leaf-sct-with-extensions.sigstore.json", CORPUS_ROOT, None, reference=True),
    # -- (6) managed keys ------------------------------------------------------------------------
    Case("corpus/public-key-hashedrekord.sigstore.json", CORPUS_ROOT, None,
         key="corpus/key-managed.pem", reference=None, why=NO_KEYS),
    Case("corpus/public-key-rekor-v2-dsse.sigstore.json", CORPUS_ROOT, None,
         key="corpus/key-managed.pem", predicate_type=SLSA_V1, reference=None, why=NO_KEYS),
    Case("corpus/public-key-hashedrekord.sigstore.json", CORPUS_ROOT, 6,
         "does not match the bundle's key", key="corpus/key-another.pem", reference=None,
         why=NO_KEYS),
    Case("corpus/public-key-hashedrekord.sigstore.json", CORPUS_ROOT, 3, "verify it with --key",
         reference=None, why=NO_KEYS),
    # -- (7) other instances: Sigstore staging (Rekor v2), production, GitHub ---------------
    Case("sigstore-python/staging-rekor-v2.txt.sigstore.json", STAGING_ROOT, None,
         digest=bytes.fromhex(
             "15f67246115921bb7c1de0e7e9e9275c8016dc254a0c009888944b7ed3644aaa"),
         issuer="https://github.com/login/oauth", identity="jku@goto.fi", reference=True),
    Case("sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json", STAGING_ROOT, None,
         digest=bytes.fromhex(
             "e248a5db4933dba6578200238c91a57f5e65b925b73050ae786933468b7ac101"),
         issuer="https://accounts.google.com",
         identity="insecure-cloudtop-shared-user@cloudtop-prod-us-east.iam.gserviceaccount.com",
         predicate_type=SLSA_V1, reference=False, why=NO_V2_DSSE),
    Case("model-transparency/model.sig.sigstore.json", STAGING_ROOT, None,
         digest=bytes.fromhex(
             "11ad7efa24975ee4b0c3c3a38ed18737f0658a5f75a0a96787b576a78a023361"),
         issuer="https://accounts.google.com", identity="ifont@redhat.com",
         predicate_type="https://model_signing/Digests/v0.1", reference=True),
    Case("sigstore-python/bundle_v3_github.whl.sigstore", PUBLIC_GOOD_ROOT, None,
         digest=GITHUB_WHL, issuer="https://token.actions.githubusercontent.com", identity=None,
         regexp=r"https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/.*",
         provenance={"source_repository": "trailofbits/rfc8785.py",
                     "source_repository_ref": "refs/tags/v0.1.2",
                     "runner_environment": "github-hosted"}, reference=True),
    Case("sigstore-python/bundle_v3_github.whl.sigstore", PUBLIC_GOOD_ROOT, 8,
         "Source repository ref does not match", digest=GITHUB_WHL,
         issuer="https://token.actions.githubusercontent.com", identity=None,
         provenance={"source_repository_ref": "refs/tags/v9.9.9"}, reference=True,
         why="the reference runs without an identity policy (UnsafeNoOp)"),
    Case("sigstore-go/bundle-v02.json", PUBLIC_GOOD_ROOT, 2, "nothing says when it was signed",
         digest=bytes.fromhex(
             "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"),
         issuer="https://token.actions.githubusercontent.com", identity=None,
         reference=False, why=NO_PROMISE_TIME),
    Case("sigstore-go/bundle-publish.json", PUBLIC_GOOD_ROOT, None, digest=b"\0" * 32,
         digests={"sha512": NPM_SHA512}, key="sigstore-go/npm-registry-key.pem",
         predicate_type="https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
         reference=None, why=NO_KEYS),
    Case("sigstore-go/bundle-github-staging.json", GITHUB_ROOT, None, digest=b"\0" * 32,
         digests={"sha512": NPM_SHA512}, issuer="https://github.com/login/oauth",
         identity="cody@soyland.com", predicate_type="https://slsa.dev/provenance/v0.2",
         reference=False, why=NO_LOGLESS),
    Case("sigstore-go/bundle-github-staging.json", GITHUB_ROOT, 8,
         "expected 'someone@else.example'", digest=b"\0" * 32, digests={"sha512": NPM_SHA512},
         issuer="https://github.com/login/oauth", identity="someone@else.example",
         predicate_type="https://slsa.dev/provenance/v0.2", reference=False,
         why=NO_LOGLESS),
    Case("sigstore-go/public-key-validity.sigstore.json",
         "sigstore-go/trusted-root-public-key-validity.json", None,
         digest=bytes.fromhex(
             "6ae8a75555209fd6c44157c0aed8016e763ff435a19cf186f76863140143ff72"),
         key="sigstore-go/public-key-validity.pem", reference=None, why=NO_KEYS),
    Case("sigstore-go/bundle-public-key.json", PUBLIC_GOOD_ROOT, 1, "not an in-toto statement",
         key="sigstore-go/public-key.pem", predicate_type=SLSA_V1, reference=None,
         why=NO_KEYS),
]


def _key(name: str | None) -> PublicKeyTypes | None:
    if name is None:
        return None
    key = load_pem_public_key((ASSETS / name).read_bytes())
    assert isinstance(key, PublicKeyTypes)
    return key


def ours(case: Case) -> VerifiedSignature:
    material = trust.read(ASSETS / case.root)
    policy = None if case.key else from_flags(
        case.issuer, case.identity, case.regexp or (None if case.identity else ".*"),
        case.provenance)
    return Verifier(material).verify(bundle.read(ASSETS / case.bundle), case.digest, policy,
                                     predicate_type=case.predicate_type, key=_key(case.key),
                                     digests=case.digests)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.id}-{c.step}")
def test_our_verdict_and_step(case: Case) -> None:
    if case.step is None:
        verified = ours(case)
        assert verified.signed_at in verified.verified_times
        return
    with pytest.raises(StepFailed) as failed:
        ours(case)
    assert failed.value.step == case.step, failed.value.detail
    assert case.because in failed.value.reason, failed.value.reason


def reference(case: Case) -> bool:
    """sigstore-python's verdict, offline, on the same bundle and trust root."""
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier as ReferenceVerifier
    from sigstore.verify.policy import UnsafeNoOp
    from sigstore_models.common.v1 import HashAlgorithm

    data = json.loads((ASSETS / case.root).read_text())
    verify: Callable[[], object]
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as root:
            json.dump(data.get("trustedRoot", data), root)
            root.flush()
            verifier = ReferenceVerifier(trusted_root=TrustedRoot.from_file(root.name))
        loaded = Bundle.from_json((ASSETS / case.bundle).read_bytes())
        if loaded._dsse_envelope is not None:
            verify = lambda: verifier.verify_dsse(loaded, UnsafeNoOp())  # noqa: E731
        else:
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=case.digest)
            verify = lambda: verifier.verify_artifact(hashed, loaded, UnsafeNoOp())  # noqa: E731
        verify()
    except Exception:  # the reference's refusals are of many kinds; the verdict is what counts
        return False
    return True


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", [c for c in CASES if c.reference is not None],
                         ids=lambda c: f"{c.id}-{c.step}")
def test_sigstore_python_on_the_same_asset(case: Case) -> None:
    assert reference(case) is case.reference
    if case.reference != (case.step is None):
        assert case.why, "a disagreement must say why"


def test_every_disagreement_says_why() -> None:
    for case in CASES:
        if case.reference is None or case.reference != (case.step is None):
            assert case.why, case.id


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("media_type", ["application/vnd.dev.sigstore.bundle.v0.3+json",
                                        "application/vnd.dev.sigstore.bundle+json;version=0.3"])
def test_both_spellings_of_v03(media_type: str) -> None:
    data = json.loads((ASSETS / "corpus/rekor-v2-hashedrekord.sigstore.json").read_text())
    data["mediaType"] = media_type
    verifier = Verifier(trust.read(ASSETS / CORPUS_ROOT))
    verified = verifier.verify(bundle.parse(json.dumps(data)), DIGEST,
                               from_flags(META["issuer"], META["identity"]))
    assert verified.log_index is not None


def test_a_v03_bundle_with_a_chain_is_refused() -> None:
    from signer.errors import UsageError

    data = json.loads((ASSETS / "corpus/v02-chain-proof-and-promise.sigstore.json").read_text())
    data["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
    with pytest.raises(UsageError, match=r"v0\.3 carries the leaf as 'certificate'"):
        bundle.parse(json.dumps(data))


def test_provenance_flags_read_a_production_fulcio_leaf() -> None:
    """A GitHub Actions leaf of Sigstore's public instance (sigstore-go's bundle-v02.json):
    the identity policy and provenance flags read its Fulcio extensions."""
    from signer.verification.policy import (
        PolicyError,
        certificate_identities,
        certificate_provenance,
    )

    leaf = bundle.read(ASSETS / "sigstore-go/bundle-v02.json").leaf
    assert leaf is not None
    identities, provenance = certificate_identities(leaf), certificate_provenance(leaf)
    beacon = "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
    policy = from_flags("https://token.actions.githubusercontent.com", None,
                        rf"https://github\.com/{beacon}/.*",
                        {"source_repository": beacon, "source_repository_ref": "refs/heads/main"})
    policy.verify(identities, provenance)
    with pytest.raises(PolicyError, match="Source repository ref does not match"):
        from_flags("https://token.actions.githubusercontent.com", None, ".*",
                   {"source_repository_ref": "refs/tags/v1"}).verify(identities, provenance)
