"""GitHub runner glue for the sign, verify, revoke and attest actions (one container).

Thin on purpose: read the inputs, get a credential, call :mod:`signer.operations` or the
client, answer with outputs, a job summary and annotations. Order matters for secrets: inputs
that hold secrets are masked first, the OIDC token the moment it exists, and nothing is
printed before either.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from signer import operations, registry, slsa
from signer.action import registry_access, summary
from signer.action.inputs import (
    BUNDLE_SOURCES,
    DIGEST_EXAMPLE,
    INPUTS,
    ISSUER_INPUT,
    PROVENANCE,
    input_name,
)
from signer.action.runner import Runner, raw_input, read_inputs
from signer.artifact import ArtifactRef, parse_ref, ref_for_file
from signer.client import Client
from signer.errors import AuthenticationError, SignerError, UsageError, VerificationFailed
from signer.oidc import github_actions_token
from signer.registry import ImageRef

# Exit code of an unexpected failure (a bug): EX_SOFTWARE, unlike every SignerError's.
INTERNAL_ERROR_EXIT = 70
PERMISSIONS_YAML = """
permissions:
  id-token: write   # the job's OIDC token is what signer authenticates
  contents: read
"""
# CLI flags that errors from shared code name, in this action's words.
_FLAG_INPUTS = {"name": "artifact_name", "api": "api_url", "bundle": "bundle_path",
                "file": "artifact_name", "predicate": "predicate_path"}
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_CLI_COMMAND = re.compile(r"('signer [^']*')")  # a command to run as written: kept
_CHECK_TRUST_ROOT = ("Check that trust_root is this service's trust root (signer trust-root "
                     "export), or re-sign the artifact.")
# What to do when the first entry failed at a step, by the verifier's name for the step.
_VERIFY_FIX_BY_STEP = {
    "artifact digest": "The digest differs from the one that was signed: verify the digest "
                       "you deploy.",
    "timestamp": _CHECK_TRUST_ROOT,
    "certificate chain": _CHECK_TRUST_ROOT,
    "certificate profile": "The certificate is not a signing certificate of this service: "
                           "re-sign the artifact.",
    "signature": "The signature does not match the artifact: re-sign it.",
    "identity and provenance": "Compare certificate_oidc_issuer, certificate_identity and the "
                               "provenance inputs with the signature's values in the job "
                               "summary; sign from the workflow and ref you expect.",
    "revocation": "The signature was revoked: build and sign a fixed release.",
}
_REGISTRY_FIX = ("On ghcr.io give the job 'permissions: packages: write' (the job's token is "
                 "the password); elsewhere log in to the registry before this step "
                 "(docker/login-action) or pass registry_username and registry_password.")


# -- entry point ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         stdout: TextIO | None = None) -> int:
    """``sign`` | ``verify`` | ``revoke``; returns the process exit code."""
    runner = Runner(env, stdout)
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command not in COMMANDS:
        runner.error(f"Unknown command '{command}': this image runs sign, verify, revoke or "
                     "attest.",
                     title="signer action")
        return 2
    specs = INPUTS[command]
    for spec in specs:  # (0) secrets given as inputs are masked before anything is printed
        if spec.secret and (value := raw_input(runner.env, spec)):
            runner.mask(value)
    try:
        COMMANDS[command](runner, read_inputs(runner.env, specs))
    except SignerError as exc:
        return fail(runner, command, exc)
    except Exception as exc:
        for line in traceback.format_exc().splitlines():
            runner.debug(line)
        error = SignerError(
            f"signer {command} stopped on an unexpected {exc.__class__.__name__}: {exc}",
            "This is a bug in signer: re-run with debug logging (ACTIONS_STEP_DEBUG) and "
            "report it with the log.")
        fail(runner, command, error)
        return INTERNAL_ERROR_EXIT
    return 0


def fail(runner: Runner, command: str, exc: SignerError) -> int:
    """One ``::error::`` with the cause and the fix, the same in the job summary."""
    error = SignerError(in_action_terms(command, exc.detail), in_action_terms(command, exc.fix))
    runner.error(error.explain(), title=f"signer {command} failed")
    hint = PERMISSIONS_YAML if "id-token: write" in error.fix else ""
    runner.add_summary(summary.failure(command, error, hint))
    return exc.exit_code or 1


def in_action_terms(command: str, text: str) -> str:
    """``--source-repository-ref`` (shared code speaks CLI) → input ``source_repository_ref``."""
    names = {spec.name for spec in INPUTS[command]}

    def replace(match: re.Match[str]) -> str:
        flag = match.group(1)
        name = _FLAG_INPUTS.get(flag, input_name(flag))
        return f"input '{name}'" if name in names else match.group(0)

    parts = _CLI_COMMAND.split(text)  # odd indexes: the commands
    return "".join(part if i % 2 else _FLAG.sub(replace, part) for i, part in enumerate(parts))


# -- shared steps -----------------------------------------------------------------------------
def artifact(value: str) -> ArtifactRef:
    """The artifact by digest; a tag is refused with how to get the digest in a workflow."""
    try:
        return parse_ref(value)
    except UsageError as exc:
        raise UsageError(
            exc.detail,
            f"Pass the image by digest, e.g. 'artifact_name: {DIGEST_EXAMPLE}' (the 'digest' "
            "output of docker/build-push-action), or look it up with 'docker buildx "
            "imagetools inspect IMAGE:TAG'.") from exc


def connect(runner: Runner, inputs: Mapping[str, Any]) -> Client:
    """A client with the job's OIDC token (masked at once) or with ``api_key``."""
    api_url = inputs["api_url"]
    if inputs["enable_github_action_token"]:
        try:
            token = github_actions_token(inputs["audience"])
        except AuthenticationError as exc:
            raise no_token(runner, exc) from exc
        runner.mask(token)
        return Client(api_url, token)
    if not inputs["api_key"]:
        raise UsageError(
            "enable_github_action_token is false and no api_key was given.",
            "Pass 'api_key: ${{ secrets.SIGNER_API_KEY }}', or give the job 'permissions: "
            "id-token: write' and drop 'enable_github_action_token: false'.")
    return Client(api_url, inputs["api_key"])


def no_token(runner: Runner, exc: AuthenticationError) -> AuthenticationError:
    fork = runner.fork_pull_request()
    if fork is None:
        return exc
    return AuthenticationError(
        f"This run is for a pull request from the fork '{fork}', and GitHub never gives "
        "pull requests from forks an OIDC token, whatever 'permissions: id-token: write' says.",
        "Sign in a workflow that runs on the base repository (push, release, "
        "workflow_dispatch) with 'permissions: id-token: write'; skip this step for forks "
        "with 'if: github.event.pull_request.head.repo.full_name == github.repository'.")


def runner_provenance(env: Mapping[str, str]) -> dict[str, str]:
    """Provenance from the runner's ``GITHUB_*`` variables: declared, not proved."""
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repository = env.get("GITHUB_REPOSITORY", "")
    owner = env.get("GITHUB_REPOSITORY_OWNER") or repository.partition("/")[0]
    values = {
        "source_repository": f"{server}/{repository}" if repository else "",
        "source_repository_owner": f"{server}/{owner}" if owner else "",
        "source_repository_ref": env.get("GITHUB_REF", ""),
        "source_repository_digest": env.get("GITHUB_SHA", ""),
        "build_config_digest": env.get("GITHUB_WORKFLOW_SHA", ""),
        "build_config_name": env.get("GITHUB_WORKFLOW", ""),
        "runner_environment": env.get("RUNNER_ENVIRONMENT", ""),
    }
    return {k: v for k, v in values.items() if v}


def declared_provenance(runner: Runner, inputs: Mapping[str, Any]
                        ) -> tuple[dict[str, str], str | None]:
    """The provenance inputs; without a token, completed from the runner and the REST API.

    With the token the service takes provenance from the token's claims, and a value given
    here must agree with them. Returns the fields and, when the API was asked, the workflow
    file's path.
    """
    given = {key: inputs[name] for name, key in PROVENANCE.items() if inputs[name]}
    if inputs["enable_github_action_token"]:
        return given, None
    declared = runner_provenance(runner.env)
    workflow_path = None
    if inputs["github_token"]:
        from signer import github_api  # pygithub is slow to import; only this path needs it

        run = github_api.workflow_run(
            inputs["github_token"], runner.env.get("GITHUB_REPOSITORY", ""),
            _run_id(runner.env), runner.env.get("GITHUB_API_URL") or github_api.DEFAULT_API_URL)
        declared.update(build_config_name=run.name, build_config_digest=run.head_sha)
        workflow_path = run.path
    return {**declared, **given}, workflow_path


def _run_id(env: Mapping[str, str]) -> int:
    value = env.get("GITHUB_RUN_ID", "")
    if not value.isdigit() or not env.get("GITHUB_REPOSITORY"):
        raise UsageError("github_token was given but GITHUB_RUN_ID / GITHUB_REPOSITORY are not "
                         "set, so there is no workflow run to look up.",
                         "Run the action in a GitHub Actions job, or drop github_token.")
    return int(value)


# -- commands ---------------------------------------------------------------------------------
def sign(runner: Runner, inputs: Mapping[str, Any]) -> None:
    ref = artifact(inputs["artifact_name"])
    # Pushing: a name that is no image fails before anything is signed, and the registry
    # credentials are masked before anything is printed.
    image = registry.image_ref(ref) if inputs["push_to_registry"] else None
    with ExitStack() as stack:
        source = "" if image is None else stack.enter_context(
            registry_access.access(runner, inputs, image))
        client = connect(runner, inputs)
        declared, workflow_path = declared_provenance(runner, inputs)
        bundle_path = Path(inputs["bundle_path"] or ref.safe_filename)
        bundle_path.parent.mkdir(parents=True, exist_ok=True)
        how = "the job's OIDC token" if inputs["enable_github_action_token"] else "an API key"
        runner.log(f"signing {ref} in namespace {inputs['namespace']} with {how}")
        signed = operations.sign(client, inputs["namespace"], ref, declared, bundle_path)
        runner.set_output("signature_id", signed.id)
        runner.set_output("certificate", signed.certificate_pem)
        runner.set_output("bundle_path", str(signed.bundle_path))
        runner.add_summary(summary.signed(signed, inputs["namespace"], workflow_path))
        if image is not None:
            runner.log(f"attaching the bundle to {image} (registry credentials: {source})")
            push(runner, signed, image, inputs["allow_insecure_registry"])
    runner.notice(f"{ref} signed as {signed.identity}; signature {signed.id}, bundle "
                  f"{signed.bundle_path}", title="signed")


def push(runner: Runner, made: operations.Signed | operations.Attested, image: ImageRef,
         allow_insecure: bool) -> None:
    """The push after the signing: outputs and summary; a failure says the signature stays,
    and how to attach the bundle without signing again."""
    what = "attestation" if isinstance(made, operations.Attested) else "signature"
    try:
        pushed = operations.push_made(made, allow_insecure or None)
    except SignerError as exc:
        exc.detail = (f"Signed ({what} {made.id}, bundle {made.bundle_path}; both stay), "
                      f"but attaching the bundle to the image in its registry failed: "
                      f"{exc.detail}")
        exc.fix = " ".join(part for part in (
            exc.fix, _REGISTRY_FIX, "Then re-run the job, or attach the bundle without "
            f"signing again: '{operations.push_command(made)}'.") if part)
        raise
    runner.set_output("referrer_digest", pushed.digest)
    runner.add_summary(summary.pushed(image, pushed))
    runner.notice(f"bundle attached to {image} as {pushed.digest} ({pushed.index}"
                  f"{'' if pushed.added else ', already there'})", title="pushed")


def bundle_source(inputs: Mapping[str, Any]) -> str:
    """``service``, ``bundle`` or ``registry``; empty: ``bundle`` when bundle_path is given."""
    source = inputs["bundle_source"] or ("bundle" if inputs["bundle_path"] else "service")
    if source not in BUNDLE_SOURCES:
        raise UsageError(f"The input 'bundle_source' is '{source}', which is none of "
                         f"{', '.join(BUNDLE_SOURCES)}.",
                         "Set 'bundle_source: registry' to verify the bundles attached to the "
                         "image, or leave it out to ask the service.")
    if (source == "bundle") != bool(inputs["bundle_path"]):
        raise UsageError(
            "bundle_source 'bundle' verifies the file bundle_path, and only it does; "
            f"bundle_source is '{source}' and bundle_path is "
            f"{repr(inputs['bundle_path']) if inputs['bundle_path'] else 'empty'}.",
            "Give bundle_path with bundle_source 'bundle' (or without bundle_source), or drop "
            "bundle_path.")
    if source != "service" and not inputs["trust_root"]:
        where = "bundle_path" if source == "bundle" else "the registry's bundles"
        raise UsageError(
            f"Verifying {where} is offline, and offline verification needs trust_root.",
            "Pass 'trust_root: trusted_root.json' (export it once with 'signer trust-root "
            "export' and commit it), or verify with the service (bundle_source: service).")
    if source == "service" and not inputs["api_url"]:
        raise UsageError("The input 'api_url' is required to verify with the service.",
                         "Add 'api_url: https://signer.example.com' under 'with:', or verify "
                         "offline: 'bundle_source: registry' (or bundle_path) and trust_root.")
    return source


def verify(runner: Runner, inputs: Mapping[str, Any]) -> None:
    ref = artifact(inputs["artifact_name"])
    source = bundle_source(inputs)
    bundle_path = Path(inputs["bundle_path"]) if source == "bundle" else None
    trust_root = Path(inputs["trust_root"]) if inputs["trust_root"] else None
    image = registry.image_ref(ref) if source == "registry" else None
    provenance = {key: inputs[name] for name, key in PROVENANCE.items()
                  if name != ISSUER_INPUT and inputs[name]}
    with ExitStack() as stack:
        credentials = "" if image is None else stack.enter_context(
            registry_access.access(runner, inputs, image))
        client = connect(runner, inputs) if source == "service" else None
        if trust_root is None:
            runner.warning("The trust root was fetched from the service being checked. Pin "
                           "it: export it once with 'signer trust-root export', commit it, "
                           "and pass trust_root.", title="trust root not pinned")
        runner.log(f"verifying {ref}" + ("" if image is None else
                                          f" from its registry (credentials: {credentials})"))
        try:
            trust_material = operations.load_trust(client, trust_root)
            policy = (inputs[ISSUER_INPUT], inputs["certificate_identity"] or None,
                      inputs["certificate_identity_regexp"] or None, provenance)
            if image is not None:
                report = operations.verify_from_registry(
                    ref, trust_material, *policy,
                    allow_insecure=inputs["allow_insecure_registry"] or None,
                    predicate_type=inputs["predicate_type"] or None)
            else:
                report = operations.verify(
                    ref, trust_material, *policy, client,
                    None if client is None else inputs["namespace"], bundle_path,
                    predicate_type=inputs["predicate_type"] or None)
        except SignerError:
            runner.set_output("verified", "false")  # a gate reads 'false', never a missing value
            raise
    runner.set_output("verified", "true" if report.ok else "false")
    expected = summary.Expectation(
        inputs[ISSUER_INPUT], inputs["certificate_identity"],
        inputs["certificate_identity_regexp"], provenance, inputs["trust_root"],
        offline=client is None, source=source)
    runner.add_summary(summary.verified(str(ref), report, expected))
    if report.ok:
        passed = next(r for r in report.results if r.ok)
        runner.notice(f"{ref}: signature {passed.entry_id} verified", title="verified")
        return
    if not report.results:
        raise VerificationFailed(
            f"No signature of {ref} is stored in namespace '{inputs['namespace']}'.",
            "Sign it first, or check artifact_name (the digest) and namespace.")
    step = summary.failed_step_name(report.results[0])
    raise VerificationFailed(
        f"No signature of {ref} passed verification: "
        + "; ".join(f"{r.entry_id}: {r.error}" for r in report.results[:5]),
        _VERIFY_FIX_BY_STEP.get(step, _CHECK_TRUST_ROOT if step else
                                "See the job summary for each step."))


def revoke(runner: Runner, inputs: Mapping[str, Any]) -> None:
    name = inputs["artifact_name"]
    if "@" in name:
        artifact(name)
    reason = inputs["reason"] or _run_url(runner.env)
    client = connect(runner, inputs)
    runner.log(f"revoking signatures of {name} from {inputs['source_repository_ref']}")
    response = client.revoke(inputs["namespace"], name, inputs["source_repository_ref"], reason)
    count = int(response.get("revoked_count", 0))
    runner.set_output("revoked_count", str(count))
    runner.add_summary(summary.revoked(name, inputs["source_repository_ref"], reason, response))
    if count:
        runner.notice(f"revoked {count} signature(s) of {name} from "
                      f"{inputs['source_repository_ref']}", title="revoked")
    else:
        runner.warning(f"No signature of {name} from {inputs['source_repository_ref']} was "
                       f"found in namespace '{inputs['namespace']}'; nothing was revoked.",
                       title="nothing revoked")


def attest(runner: Runner, inputs: Mapping[str, Any]) -> None:
    name, path = inputs["artifact_name"], inputs["artifact_path"]
    if bool(name) == bool(path):
        raise UsageError("Give exactly one of artifact_name and artifact_path.",
                         f"'artifact_name: {DIGEST_EXAMPLE}' for an image, or 'artifact_path: "
                         "dist/app.tar.gz' for a file of the workspace.")
    ref = ref_for_file(Path(path), None) if path else artifact(name)
    predicate = None
    if inputs["predicate_path"]:
        predicate = operations.read_predicate(Path(inputs["predicate_path"]))
    elif inputs["predicate_type"] and inputs["predicate_type"] != slsa.PREDICATE_TYPE:
        raise UsageError(f"predicate_type {inputs['predicate_type']} needs predicate_path.",
                         "Pass the predicate's JSON file, or drop predicate_type for SLSA "
                         "build provenance from the job's token.")
    if inputs["push_to_registry"] and path:
        raise UsageError("push_to_registry attaches the bundle to an image in a registry; "
                         "artifact_path is a file, in none.",
                         f"Attest the image by 'artifact_name: {DIGEST_EXAMPLE}', or drop "
                         "push_to_registry.")
    # As for sign: a name that is no image fails before anything is attested.
    image = registry.image_ref(ref) if inputs["push_to_registry"] else None
    with ExitStack() as stack:
        source = "" if image is None else stack.enter_context(
            registry_access.access(runner, inputs, image))
        client = connect(runner, inputs)
        bundle_path = Path(inputs["bundle_path"]) if inputs["bundle_path"] else None
        if bundle_path is not None:
            bundle_path.parent.mkdir(parents=True, exist_ok=True)
        runner.log(f"attesting {ref} in namespace {inputs['namespace']}")
        attested = operations.attest(client, inputs["namespace"], ref,
                                     inputs["predicate_type"] or None, predicate, bundle_path)
        runner.set_output("attestation_id", attested.id)
        runner.set_output("bundle_path", str(attested.bundle_path))
        runner.add_summary(summary.attested(attested, inputs["namespace"]))
        if image is not None:
            runner.log(f"attaching the bundle to {image} (registry credentials: {source})")
            push(runner, attested, image, inputs["allow_insecure_registry"])
    runner.notice(f"{ref} attested ({attested.predicate_type}) as {attested.identity}; "
                  f"attestation {attested.id}, bundle {attested.bundle_path}", title="attested")


def _run_url(env: Mapping[str, str]) -> str:
    server, repo, run = (env.get(k, "") for k in
                         ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run:
        return f"revoked by {server}/{repo}/actions/runs/{run}"
    return "revoked from a GitHub Actions workflow"


COMMANDS: dict[str, Callable[[Runner, Mapping[str, Any]], None]] = {
    "sign": sign, "verify": verify, "revoke": revoke, "attest": attest,
}
