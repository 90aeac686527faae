"""SLSA build provenance v1 (https://slsa.dev/spec/v1.0/provenance) from a verified token.

For a ``github``-kind issuer the predicate is the one ``actions/attest-build-provenance``
writes (its ``generateProvenancePredicate``): build type
``https://actions.github.io/buildtypes/workflow/v1``, the workflow's ref, repository and path
as external parameters, the event and ids as internal parameters, the source at its commit
as the resolved dependency, the job workflow as the builder and the run attempt as the
invocation. Other kinds get the same shape from the kind-neutral `Provenance` record the
token maps to (``signer.issuers``), under a build type naming the kind; a kind without a
source (generic) records only what its token proves: the builder is the issuer.

The service builds the predicate (``signer.service.attesting``) and refuses an uploaded SLSA
v1 statement whose predicate is not exactly this one: what the token proves cannot be
overridden by the client.
"""

from __future__ import annotations

from typing import Any, Final

from signer.issuers import Issuer
from signer.provenance import Claims, Provenance, claim_text

PREDICATE_TYPE: Final = "https://slsa.dev/provenance/v1"
GITHUB_BUILD_TYPE: Final = "https://actions.github.io/buildtypes/workflow/v1"
# Our build types for the other kinds: the same fields, read from the Fulcio-style record.
BUILD_TYPE_PREFIX: Final = "https://signer.dev/buildtypes/"


def predicate(issuer: Issuer, claims: Claims, provenance: Provenance) -> dict[str, Any]:
    """The SLSA v1 predicate the token (``claims`` of ``issuer``) proves."""
    if issuer.kind == "github":
        return _github(claims, issuer.server_url or "https://github.com")
    return _from_provenance(issuer, provenance)


def _github(claims: Claims, server: str) -> dict[str, Any]:
    def text(name: str) -> str:
        return claim_text(claims.get(name)) or ""

    repository, ref = text("repository"), text("ref")
    # workflow_ref is "org/repo/.github/workflows/build.yml@refs/heads/main"
    path = text("workflow_ref").removeprefix(f"{repository}/").split("@", 1)[0]
    return {
        "buildDefinition": {
            "buildType": GITHUB_BUILD_TYPE,
            "externalParameters": {"workflow": {
                "ref": ref, "repository": f"{server}/{repository}", "path": path}},
            "internalParameters": {"github": {
                "event_name": text("event_name"), "repository_id": text("repository_id"),
                "repository_owner_id": text("repository_owner_id"),
                "runner_environment": text("runner_environment")}},
            "resolvedDependencies": [{
                "uri": f"git+{server}/{repository}@{ref}",
                "digest": {"gitCommit": text("sha")}}],
        },
        "runDetails": {
            "builder": {"id": f"{server}/{text('job_workflow_ref')}"},
            "metadata": {"invocationId": (f"{server}/{repository}/actions/runs/"
                                          f"{text('run_id')}/attempts/{text('run_attempt')}")},
        },
    }


def _from_provenance(issuer: Issuer, p: Provenance) -> dict[str, Any]:
    external: dict[str, Any] = {}
    if p.build_config_uri:
        external["buildConfig"] = {"uri": p.build_config_uri,
                                   **({"digest": p.build_config_digest}
                                      if p.build_config_digest else {})}
    if p.source_repository or p.source_repository_ref:
        external["source"] = {k: v for k, v in (("repository", p.source_repository),
                                                ("ref", p.source_repository_ref)) if v}
    internal = {k: v for k, v in (("trigger", p.build_trigger),
                                  ("runner_environment", p.runner_environment),
                                  ("repository_id", p.source_repository_identifier),
                                  ("owner_id", p.source_repository_owner_identifier)) if v}
    dependencies: list[dict[str, Any]] = []
    if p.source_repository_digest:
        uri = (f"git+{p.source_repository}@{p.source_repository_ref}"
               if p.source_repository and p.source_repository_ref else None)
        dependencies.append({**({"uri": uri} if uri else {}),
                             "digest": {"gitCommit": p.source_repository_digest}})
    definition: dict[str, Any] = {"buildType": f"{BUILD_TYPE_PREFIX}{issuer.kind}/v1",
                                  "externalParameters": external}
    if internal:
        definition["internalParameters"] = {issuer.kind: internal}
    if dependencies:
        definition["resolvedDependencies"] = dependencies
    run: dict[str, Any] = {"builder": {"id": p.build_signer_uri or issuer.url}}
    if p.run_invocation_uri:
        run["metadata"] = {"invocationId": p.run_invocation_uri}
    return {"buildDefinition": definition, "runDetails": run}
