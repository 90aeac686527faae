"""The ``signer`` command: parse → call → print. Every flag is also ``SIGNER_<FLAG>``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from signer import monitor, operations, registry, slsa
from signer.artifact import ArtifactRef, parse_ref, ref_for_file
from signer.client import DEFAULT_API, Client
from signer.errors import SignerError, UsageError
from signer.issuers import KINDS as ISSUER_KINDS
from signer.oidc import DEFAULT_AUDIENCE, github_actions_token
from signer.provenance import FLAG_FIELDS
from signer.service.config import DEFAULTS, OPTIONS, Settings, issuer_set

F = TypeVar("F", bound=Callable[..., Any])


def _env(flag: str) -> str:
    return "SIGNER_" + flag.upper().replace("-", "_")


def option(flag: str, *names: str, **kwargs: Any) -> Callable[[F], F]:
    """A ``--flag`` that also reads ``SIGNER_FLAG``."""
    return click.option(f"--{flag}", *names, envvar=_env(flag), show_envvar=True, **kwargs)


def connection_options(func: F) -> F:
    for decorator in reversed([
        option("api", default=DEFAULT_API, show_default=True, help="The signer service URL."),
        option("namespace", help="The namespace to work in."),
        option("api-key", help="An API key (prefer SIGNER_API_KEY: flags show in `ps`)."),
        option("enable-github-action-token", is_flag=True, default=False,
               help="Authenticate with the GitHub Actions OIDC token of this job."),
        option("audience", default=DEFAULT_AUDIENCE, show_default=True,
               help="Audience of the requested OIDC token."),
        option("output", type=click.Choice(["text", "json"]), default="text",
               show_default=True),
    ]):
        func = decorator(func)
    return func


def provenance_options(func: F) -> F:
    for field in reversed(FLAG_FIELDS):
        func = option(field.flag or "", "prov_" + field.key, help=f"{field.label}.")(func)
    return func


def _provenance(kwargs: dict[str, Any]) -> dict[str, str | None]:
    return {k.removeprefix("prov_"): kwargs.pop(k) for k in list(kwargs) if k.startswith("prov_")}


def _client(api: str, api_key: str | None, enable_github_action_token: bool, audience: str,
            **_: Any) -> Client:
    token = github_actions_token(audience) if enable_github_action_token else api_key
    return Client(api, token)


def _namespace(namespace: str | None) -> str:
    if not namespace:
        raise UsageError("No namespace given.", "Pass --namespace (SIGNER_NAMESPACE).")
    return namespace


def registry_option(func: F) -> F:
    return option("allow-insecure-registry", is_flag=True, default=None,
                  help="Allow a registry over plain http that is not on loopback.")(func)


def _print(output: str, text: str, data: Any) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="signer")
def cli() -> None:
    """Keyless signing of container images and build artifacts."""


# -- artifact ---------------------------------------------------------------------------------
@cli.group()
def artifact() -> None:
    """Sign, verify, revoke and look up artifact signatures."""


def _ref(name: str | None, file: Path | None) -> ArtifactRef:
    if file is not None:
        return ref_for_file(file, name)
    if not name:
        raise UsageError("No artifact given.", "Pass --name NAME@sha256:<digest>, or --file PATH.")
    return parse_ref(name)


@artifact.command()
@option("name", help="name@sha256:<64 hex> (with --file: a name for the file).")
@option("file", type=click.Path(dir_okay=False, path_type=Path), help="Sign a local file.")
@option("bundle", type=click.Path(dir_okay=False, path_type=Path),
        help="Where to write the bundle [default: <name-safe>.sigstore.json].")
@option("certificate-identity", help="Expected identity; refused if it is not yours.")
@option("push", is_flag=True, default=False,
        help="Also attach the bundle to the image in its registry (an OCI 1.1 referrer).")
@registry_option
@provenance_options
@connection_options
def sign(name: str | None, file: Path | None, bundle: Path | None,
         certificate_identity: str | None, push: bool, allow_insecure_registry: bool | None,
         output: str, namespace: str | None, **kwargs: Any) -> None:
    """Sign an artifact by digest; writes a Sigstore bundle and prints the signature id."""
    declared = _provenance(kwargs)
    client = _client(**kwargs)
    ref = _ref(name, file)
    _check_pushable(push, ref, file)
    signed = operations.sign(client, _namespace(namespace), ref, declared, bundle)
    if certificate_identity and certificate_identity != signed.identity:
        raise UsageError(f"The certificate was issued to '{signed.identity}', not "
                         f"'{certificate_identity}'.", "Drop --certificate-identity.")
    if output == "text":
        click.echo(f"signed {signed.ref} as {signed.identity}; bundle: {signed.bundle_path}",
                   err=True)
    _print(output, signed.id, _pushed(signed, push, allow_insecure_registry, output))


@artifact.command()
@option("name", help="name@sha256:<64 hex> (with --file: a name for the file).")
@option("file", type=click.Path(dir_okay=False, path_type=Path), help="Attest a local file.")
@option("predicate-type", help="The predicate's in-toto type URI [default: SLSA provenance "
        "v1, built by the service from your token].")
@option("predicate", type=click.Path(dir_okay=False, path_type=Path),
        help="A JSON predicate to wrap (an SBOM, a test result); needs --predicate-type.")
@option("bundle", type=click.Path(dir_okay=False, path_type=Path),
        help="Where to write the bundle [default: <name-safe>.intoto.sigstore.json].")
@option("push", is_flag=True, default=False,
        help="Also attach the bundle to the image in its registry (an OCI 1.1 referrer).")
@registry_option
@connection_options
def attest(name: str | None, file: Path | None, predicate_type: str | None,
           predicate: Path | None, bundle: Path | None, push: bool,
           allow_insecure_registry: bool | None, output: str, namespace: str | None,
           **kwargs: Any) -> None:
    """Attest an artifact: an in-toto statement in a DSSE envelope, in a Sigstore bundle."""
    if predicate is None and predicate_type and predicate_type != slsa.PREDICATE_TYPE:
        raise UsageError(f"--predicate-type {predicate_type} needs --predicate FILE.",
                         "Pass the predicate's JSON, or drop --predicate-type for SLSA "
                         "build provenance.")
    client = _client(**kwargs)
    ref = _ref(name, file)
    _check_pushable(push, ref, file)
    body = operations.read_predicate(predicate) if predicate is not None else None
    attested = operations.attest(client, _namespace(namespace), ref, predicate_type, body,
                                 bundle)
    if output == "text":
        click.echo(f"attested {attested.ref} ({attested.predicate_type}) as "
                   f"{attested.identity}; bundle: {attested.bundle_path}", err=True)
    _print(output, attested.id, _pushed(attested, push, allow_insecure_registry, output))


def _check_pushable(push: bool, ref: ArtifactRef, file: Path | None) -> None:
    """Before anything is signed: --push needs an image, named by digest in its registry."""
    if push and file is not None:
        raise UsageError("--push attaches the bundle to an image in a registry; a --file "
                         "is not in one.", "Drop --push, or sign the image by --name.")
    if push:
        registry.image_ref(ref)  # a name that is no image fails before anything is signed


def _pushed(made: operations.Signed | operations.Attested, push: bool,
            allow_insecure: bool | None, output: str) -> dict[str, Any]:
    """``made``'s JSON output, after attaching its bundle to the image when ``push``."""
    data = made.as_dict()
    if not push:
        return data
    try:
        pushed = operations.push_made(made, allow_insecure)
    except SignerError as exc:
        exc.detail = (f"Stored ({made.id}, bundle {made.bundle_path}), but the push to the "
                      f"registry failed: {exc.detail}")
        exc.fix = (exc.fix + " Then push the bundle again, without signing again: "
                   f"'{operations.push_command(made)}'.").strip()
        raise
    data["referrer"] = pushed.as_dict()
    if output == "text":
        image = registry.image_ref(made.ref)
        click.echo(f"pushed to {image.registry}/{image.repository}@{pushed.digest} "
                   f"({pushed.index}{'' if pushed.added else ', already there'})", err=True)
    return data


@artifact.command()
@option("name", required=True, help="The image: REGISTRY/REPO@sha256:<64 hex>.")
@option("bundle", required=True, type=click.Path(dir_okay=False, path_type=Path),
        help="The bundle to attach (a .sigstore.json file).")
@option("predicate-type", help="For an attestation: its in-toto predicate type.")
@registry_option
@option("output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def push(name: str, bundle: Path, predicate_type: str | None,
         allow_insecure_registry: bool | None, output: str) -> None:
    """Attach an existing bundle to the image in its registry (an OCI 1.1 referrer)."""
    ref = parse_ref(name)
    try:
        data = bundle.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read the bundle {bundle}: {exc.strerror}.") from None
    pushed = operations.push_to_registry(ref, data, predicate_type, allow_insecure_registry)
    _print(output, pushed.digest, pushed.as_dict())


@artifact.command()
@option("name", help="name@sha256:<64 hex> (with --file: the name it was signed as).")
@option("file", type=click.Path(dir_okay=False, path_type=Path), help="Verify a local file.")
@option("certificate-identity", help="The exact identity that must have signed.")
@option("certificate-identity-regexp", help="A regular expression the identity must match.")
@option("trust-root", type=click.Path(dir_okay=False, path_type=Path),
        help="Pinned trusted_root.json (else fetched from --api, with a note).")
@option("bundle", type=click.Path(dir_okay=False, path_type=Path),
        help="Verify this bundle offline (needs --trust-root); revocation is not checked.")
@option("from-registry", is_flag=True, default=False,
        help="Verify every Sigstore bundle attached to the image in its registry, offline.")
@registry_option
@option("key", type=click.Path(dir_okay=False, path_type=Path),
        help="A bundle signed with this managed key (PEM): no certificate, no identity check.")
@option("predicate-type", help="Verify attestations (DSSE bundles) whose in-toto statement "
        "has this predicate type; without it only signatures verify.")
@provenance_options
@connection_options
def verify(name: str | None, file: Path | None, certificate_identity: str | None,
           certificate_identity_regexp: str | None, trust_root: Path | None,
           bundle: Path | None, from_registry: bool, allow_insecure_registry: bool | None,
           key: Path | None, predicate_type: str | None, output: str, namespace: str | None,
           **kwargs: Any) -> None:
    """Verify every signature of an artifact: chain, timestamp, signature, identity,
    provenance, revocation. Exits 1 when none passes.

    --trust-root takes any Sigstore trusted_root.json (signer's, Sigstore's public
    instance, GitHub's, a private deployment's) or a ClientTrustConfig."""
    provenance = _provenance(kwargs)
    issuer = provenance.pop("issuer")
    ref = _ref(name, file)
    if from_registry:
        if bundle is not None:
            raise UsageError("--from-registry and --bundle both say where the bundles are.",
                             "Pass one of them.")
        client = None if trust_root else _client(**kwargs)
        report = operations.verify_from_registry(
            ref, operations.load_trust(client, trust_root), issuer, certificate_identity,
            certificate_identity_regexp, provenance, allow_insecure_registry,
            key_path=key, predicate_type=predicate_type, file=file)
    else:
        offline = bundle is not None
        client = None if offline else _client(**kwargs)
        report = operations.verify(
            ref, operations.load_trust(client, trust_root), issuer, certificate_identity,
            certificate_identity_regexp, provenance, client,
            None if offline else _namespace(namespace), bundle, key_path=key,
            predicate_type=predicate_type, file=file)
    data = {
        "verified": report.ok, "name": str(ref), "revocation_checked": report.revocation_checked,
        "entries": [{
            "id": r.entry_id, "verified": r.ok, "error": r.error, "failed_step": r.failed_step,
            "identity": r.verified.identity if r.verified else None,
            "signed_at": r.verified.signed_at.isoformat() if r.verified else None,
            "provenance": r.verified.provenance.as_dict() if r.verified else None,
            "predicate_type": r.verified.statement.predicate_type
            if r.verified and r.verified.statement else None,
        } for r in report.results],
    }
    text = ("verified: " if report.ok else "verification failed: ") + str(ref) + "\n" \
        + report.explain() + "".join(f"\nnote: {n}" for n in report.notes)
    if output == "json" or report.ok:
        _print(output, text, data)
    else:
        click.echo(text, err=True)
    if not report.ok:
        sys.exit(1)


@artifact.command("revoke-signature")
@option("name", required=True, help="The artifact name (a digest is optional).")
@option("source-repository-ref", required=True, help="Revoke signatures made from this ref.")
@option("reason", default="", help="Why, for the record and for verifiers.")
@connection_options
def revoke_signature(name: str, source_repository_ref: str, reason: str, output: str,
                     namespace: str | None, **kwargs: Any) -> None:
    """Revoke every signature of NAME made from a ref; nothing is deleted."""
    result = _client(**kwargs).revoke(_namespace(namespace), name, source_repository_ref,
                                      reason)
    _print(output, f"revoked {result['revoked_count']} signature(s) of {name} from "
           f"{source_repository_ref}", result)


@artifact.command("list")
@option("name-prefix", default="", help="Only names starting with this.")
@option("limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@option("from-registry", is_flag=True, default=False,
        help="List what is attached to the image --name in its registry instead.")
@option("name", help="With --from-registry: the image, REGISTRY/REPO@sha256:<64 hex>.")
@registry_option
@connection_options
def list_(name_prefix: str, limit: int, from_registry: bool, name: str | None,
          allow_insecure_registry: bool | None, output: str, namespace: str | None,
          **kwargs: Any) -> None:
    """List signatures, newest first (or, --from-registry, an image's referrers)."""
    if from_registry:
        ref = _ref(name, None)
        found = operations.registry_referrers(ref, allow_insecure_registry)
        items = [a.as_dict() for a in found.attached]
        lines = [f"{a['digest']}  {a['artifact_type'] or '-'}  {a['predicate_type'] or '-'}  "
                 f"{a['created'] or '-'}" + (f"  ({a['error']})" if a["error"] else "")
                 for a in items]
        _print(output, "\n".join(lines) or f"nothing refers to {ref} ({found.index})",
               {"name": str(ref), "index": found.index, "referrers": items})
        return
    rows = _client(**kwargs).list_signatures(_namespace(namespace), name_prefix, limit)
    text = "\n".join(
        f"{r['id']}  {r['created_at']}  {'REVOKED ' if r['revoked'] else ''}{r['name']}  "
        f"{r['identity']}" for r in rows) or "no signatures"
    _print(output, text, rows)


@artifact.command()
@click.argument("signature_id")
@connection_options
def show(signature_id: str, output: str, namespace: str | None, **kwargs: Any) -> None:
    """Show one signature with its provenance."""
    view = _client(**kwargs).show_signature(_namespace(namespace), signature_id)
    lines = [f"{k}: {view[k]}" for k in ("id", "name", "identity", "issuer", "signed_at")]
    lines += [f"  {k}: {v}" for k, v in view["provenance"].items()]
    if view["revocation"]:
        r = view["revocation"]
        lines.append(f"REVOKED at {r['revoked_at']} by {r['revoked_by']}: {r['reason']}")
    _print(output, "\n".join(lines), view)


# -- trust root -------------------------------------------------------------------------------
@cli.group("trust-root")
def trust_root() -> None:
    """The service's trust material, to pin in verifiers."""


@trust_root.command("export")
@option("api", default=DEFAULT_API, show_default=True)
@option("out", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="[default: trusted_root.json, or trust_config.json with --client-config]")
@click.option("--client-config", is_flag=True,
              help="Write Sigstore's ClientTrustConfig (for 'sigstore --trust-config').")
@option("namespace", default=None,
        help="With --client-config: sign in this namespace (its /ns/<namespace> URLs).")
@click.option("--policy-controller", "trust_root_name", default=None, metavar="NAME",
              help="Write a sigstore policy-controller TrustRoot named NAME instead.")
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl"]), default="json",
              show_default=True, help="jsonl: one trusted root a line, as 'gh attestation "
              "verify --custom-trusted-root' reads it.")
def export_trust_root(api: str, out: Path | None, client_config: bool, namespace: str | None,
                      trust_root_name: str | None, fmt: str) -> None:
    """Write the service's trusted_root.json (or the client trust config around it)."""
    client = Client(api)
    if trust_root_name:
        from signer.registry.deploy import policy_controller_trust_root

        out = out or Path(f"{trust_root_name}.trustroot.json")
        trust_material = operations.load_trust(client, None)
        out.write_text(policy_controller_trust_root(trust_material, trust_root_name, api) + "\n")
    elif client_config:
        out = out or Path("trust_config.json")
        out.write_bytes(client.trust_config(namespace))
    elif fmt == "jsonl":
        out = out or Path("trusted_root.jsonl")
        out.write_text(json.dumps(json.loads(client.trust_root()), separators=(",", ":"))
                       + "\n")
    else:
        out = out or Path("trusted_root.json")
        out.write_bytes(client.trust_root())
    click.echo(str(out))


@cli.group("log")
def log_group() -> None:
    """The transparency log of signatures and revocations."""


@log_group.command("verify")
@option("api", default=DEFAULT_API, show_default=True)
@option("trust-root", type=click.Path(dir_okay=False, path_type=Path),
        help="Pinned trusted_root.json (else fetched from --api, with a note).")
@option("checkpoint", type=click.Path(dir_okay=False, path_type=Path),
        help="The last checkpoint this monitor saw; updated when the new one is proven "
             "[default: signer-checkpoint.txt, with --v2 signer-checkpoint-v2.txt].")
@option("v2", is_flag=True,
        help="Monitor the Rekor v2 tile log (/api/v2/checkpoint and its tiles).")
@option("output", type=click.Choice(["text", "json"]), default="text")
def log_verify(api: str, trust_root: Path | None, checkpoint: Path | None, v2: bool,
               output: str) -> None:
    """Monitor the log: the latest checkpoint is signed by the pinned key and extends the
    saved one (consistency proof). Exits 1 on a fork or a bad signature."""
    client = Client(api)
    trust = operations.load_trust(client, trust_root)
    if v2:
        result = monitor.check_tiles(client, trust,
                                     checkpoint or Path("signer-checkpoint-v2.txt"))
    else:
        result = monitor.check(client, trust, checkpoint or Path("signer-checkpoint.txt"))
    _print(output, result.explain(), result.as_dict())
    if not result.ok:
        sys.exit(1)


# -- admin ------------------------------------------------------------------------------------
def _admin(api: str, api_key: str | None) -> Client:
    if not api_key:
        raise UsageError("Admin commands need an admin API key.",
                         "Pass --api-key or set SIGNER_API_KEY.")
    return Client(api, api_key)


def admin_options(func: F) -> F:
    for decorator in reversed([
        option("api", default=DEFAULT_API, show_default=True),
        option("api-key", help="An admin API key (prefer SIGNER_API_KEY)."),
        option("output", type=click.Choice(["text", "json"]), default="text"),
    ]):
        func = decorator(func)
    return func


@cli.group()
def namespace() -> None:
    """Namespaces isolate tenants (server admin key)."""


@namespace.command("create")
@click.argument("name")
@admin_options
def namespace_create(name: str, api: str, api_key: str | None, output: str) -> None:
    result = _admin(api, api_key).request("POST", "/v1/namespaces", json={"name": name})
    _print(output, f"created namespace {name}", result)


@namespace.command("list")
@admin_options
def namespace_list(api: str, api_key: str | None, output: str) -> None:
    result = _admin(api, api_key).request("GET", "/v1/namespaces")
    _print(output, "\n".join(n["name"] for n in result["namespaces"]), result)


@cli.group()
def policy() -> None:
    """Which OIDC tokens may act in a namespace. Nothing is allowed by default."""


@policy.command("add")
@option("namespace", required=True)
@option("issuer", required=True, help="e.g. https://token.actions.githubusercontent.com")
@click.option("--claim", "claims", multiple=True, required=True,
              help="NAME=VALUE, exact match; repeat to require several.")
@option("permissions", required=True, help="Comma-separated: sign,verify,revoke,admin")
@admin_options
def policy_add(namespace: str, issuer: str, claims: tuple[str, ...], permissions: str,
               api: str, api_key: str | None, output: str) -> None:
    matchers = {}
    for claim in claims:
        key, sep, value = claim.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--claim '{claim}' is not NAME=VALUE.",
                             "For example --claim repository_owner=acme.")
        matchers[key] = value
    result = _admin(api, api_key).request(
        "POST", f"/v1/namespaces/{namespace}/policies",
        json={"issuer": issuer, "claims": matchers, "permissions": permissions.split(",")})
    _print(output, result["id"], result)


@policy.command("list")
@option("namespace", required=True)
@admin_options
def policy_list(namespace: str, api: str, api_key: str | None, output: str) -> None:
    result = _admin(api, api_key).request("GET", f"/v1/namespaces/{namespace}/policies")
    text = "\n".join(f"{p['id']}  {p['issuer']}  "
                     f"{','.join(f'{k}={v}' for k, v in p['claims'].items())}  "
                     f"{','.join(p['permissions'])}" for p in result["policies"])
    _print(output, text or "no policies", result)


@policy.command("remove")
@option("namespace", required=True)
@click.argument("policy_id")
@admin_options
def policy_remove(namespace: str, policy_id: str, api: str, api_key: str | None, output: str
                  ) -> None:
    _admin(api, api_key).request("DELETE", f"/v1/namespaces/{namespace}/policies/{policy_id}")
    _print(output, f"removed {policy_id}", {"removed": policy_id})


@cli.group()
def issuer() -> None:
    """OIDC issuers and their kinds: the kind decides what a token's claims mean (server
    admin key). Well-known issuers need no declaration; any other is 'generic'."""


@issuer.command("add")
@option("url", required=True, help="The issuer URL, as the tokens' 'iss' claim says.")
@option("type", "kind", required=True, type=click.Choice(ISSUER_KINDS),
        help="How its tokens' claims become provenance.")
@option("server-url", help="github/gitlab: the web origin provenance URLs point at "
                           "[default: from the issuer URL].")
@option("allow-http", is_flag=True, default=False,
        help="Accept this plain-http issuer (local tests only).")
@admin_options
def issuer_add(url: str, kind: str, server_url: str | None, allow_http: bool, api: str,
               api_key: str | None, output: str) -> None:
    """Declare an issuer's kind (a self-managed GitLab, a GHES, a local test issuer)."""
    result = _admin(api, api_key).request("POST", "/v1/issuers", json={
        "url": url, "type": kind, "server_url": server_url, "allow_http": allow_http})
    _print(output, f"declared {result['url']} as {result['type']}", result)


@issuer.command("list")
@admin_options
def issuer_list(api: str, api_key: str | None, output: str) -> None:
    """List the declared issuers: URL, type, server URL (well-known ones are not listed)."""
    result = _admin(api, api_key).request("GET", "/v1/issuers")
    text = "\n".join(f"{i['url']}  {i['type']}  {i['server_url'] or '-'}"
                     f"{'  allow-http' if i['allow_http'] else ''}" for i in result["issuers"])
    _print(output, text or "no declared issuers", result)


@issuer.command("remove")
@option("url", required=True, help="The declared issuer URL.")
@admin_options
def issuer_remove(url: str, api: str, api_key: str | None, output: str) -> None:
    """Forget a declaration: the issuer is well-known or generic again."""
    _admin(api, api_key).request("DELETE", "/v1/issuers", params={"url": url})
    _print(output, f"removed {url}", {"removed": url})


@cli.group("api-key")
def api_key_group() -> None:
    """API keys: one namespace, some permissions, shown once, stored hashed."""


@api_key_group.command("create")
@option("namespace", required=True)
@click.option("--name", "key_name", required=True, help="A name for the key.")
@option("permissions", required=True, help="Comma-separated: sign,verify,revoke,admin")
@admin_options
def api_key_create(namespace: str, key_name: str, permissions: str, api: str,
                   api_key: str | None, output: str) -> None:
    """Create a key; its token is printed once and never again."""
    result = _admin(api, api_key).request(
        "POST", f"/v1/namespaces/{namespace}/api-keys",
        json={"name": key_name, "permissions": permissions.split(",")})
    _print(output, result["token"], result)


@api_key_group.command("list")
@option("namespace", required=True)
@admin_options
def api_key_list(namespace: str, api: str, api_key: str | None, output: str) -> None:
    result = _admin(api, api_key).request("GET", f"/v1/namespaces/{namespace}/api-keys")
    text = "\n".join(f"{k['id']}  {k['name']}  {','.join(k['permissions'])}  "
                     f"{'revoked' if k['revoked_at'] else 'active'}" for k in result["api_keys"])
    _print(output, text or "no keys", result)


@api_key_group.command("revoke")
@option("namespace", required=True)
@click.argument("key_id")
@admin_options
def api_key_revoke(namespace: str, key_id: str, api: str, api_key: str | None, output: str
                   ) -> None:
    result = _admin(api, api_key).request("DELETE", f"/v1/namespaces/{namespace}/api-keys/{key_id}")
    _print(output, f"revoked {key_id}", result)


# -- server -----------------------------------------------------------------------------------
@cli.group()
def server() -> None:
    """Run the service."""


def settings_options(*names: str) -> Callable[[F], F]:
    """Options for these service settings: flag, variable, default and help from the one
    table (:class:`signer.service.config.Settings`)."""

    def decorate(func: F) -> F:
        for name in reversed(names):
            opt, default = OPTIONS[name], DEFAULTS.get(name)
            kwargs: dict[str, Any] = {"type": _click_type(opt.parse, opt.bounds)}
            if opt.multiple:
                kwargs.update(multiple=True, default=(), show_default=False)
            elif name not in DEFAULTS:
                kwargs["required"] = True
            else:
                kwargs.update(default=default, show_default=opt.shown_default or True)
            func = click.option(f"--{opt.flag}", name, envvar=list(opt.envs), show_envvar=True,
                                help=opt.help, **kwargs)(func)
        return func

    return decorate


def _click_type(parse: Callable[[str], Any], bounds: tuple[int, int | None] | None
                ) -> click.ParamType[Any] | None:
    if parse is Path:
        return click.Path(file_okay=False, path_type=Path)
    if parse not in (int, float):
        return None  # text; the Settings field's own parse (issuer_set) reads it after
    if bounds is None:
        return click.INT if parse is int else click.FLOAT
    low, high = bounds
    return click.IntRange(low, high) if parse is int else click.FloatRange(low, high)


server_options = settings_options("data_dir", "database_url")
# Commands that decide (create or rotate keys) write their audit line where the service does.
audited_options = settings_options("data_dir", "database_url", "audit_log")


@server.command("init")
@audited_options
@option("pkcs11-module", help="Keys on a PKCS#11 token: the module (.so) [default: key files].")
@option("pkcs11-token-label", help="The token's label (its PIN: env SIGNER_PKCS11_PIN).")
@option("pkcs11-key-label", "pkcs11_key_labels", multiple=True, metavar="KIND=LABEL",
        help="Use this existing token key for KIND (root, ca, tsa, tlog, ctlog) instead of "
             "generating one. Repeatable.")
@option("pkcs11-label-prefix", default="", help="Prefix of the generated keys' labels (several "
        "services on one token).")
def server_init(data_dir: Path, database_url: str | None, audit_log: str | None,
                pkcs11_module: str | None,
                pkcs11_token_label: str | None, pkcs11_key_labels: tuple[str, ...],
                pkcs11_label_prefix: str) -> None:
    """Create the CA, the TSA, the database; print the admin API key once."""
    from signer.service.bootstrap import initialize
    from signer.service.config import Settings
    from signer.service.tuf_repository import root_key_path

    reference = None
    if pkcs11_module or pkcs11_token_label or pkcs11_key_labels or pkcs11_label_prefix:
        if not (pkcs11_module and pkcs11_token_label):
            raise UsageError("Keys on a PKCS#11 token need both --pkcs11-module and "
                             "--pkcs11-token-label.")
        from signer.service import pkcs11

        reference = pkcs11.Reference(str(Path(pkcs11_module).absolute()), pkcs11_token_label,
                                     pkcs11.key_labels(pkcs11_key_labels), pkcs11_label_prefix)
    token = initialize(Settings(data_dir=data_dir, database_url=database_url,
                                audit_log=audit_log), reference)
    click.echo(f"initialized {data_dir}", err=True)
    _tuf_root_notice(data_dir, root_key_path(data_dir))
    click.echo("admin API key (shown once, store it as a secret):", err=True)
    click.echo(token)


@server.command("migrate")
@server_options
def server_migrate(data_dir: Path, database_url: str | None) -> None:
    """Upgrade the database schema in place (and add what a newer release needs)."""
    from signer.service import bootstrap, database
    from signer.service.config import Settings

    engine = database.create_engine(database.database_url(database_url, data_dir))
    head = bootstrap.migrate(Settings(data_dir=data_dir, database_url=database_url), engine)
    click.echo(f"schema at {head}")


@server.command("rotate-admin-key")
@audited_options
def server_rotate_admin_key(data_dir: Path, database_url: str | None, audit_log: str | None
                            ) -> None:
    """Create a new server admin key and revoke the old one(s); prints the new key once."""
    from signer.service.admin_keys import rotate
    from signer.service.config import Settings

    token, revoked = rotate(Settings(data_dir=data_dir, database_url=database_url,
                                     audit_log=audit_log))
    click.echo(f"revoked {len(revoked)} admin key(s): {', '.join(revoked) or '-'}", err=True)
    click.echo("new admin API key (shown once, store it as a secret):", err=True)
    click.echo(token)


@server.command("rotate-key")
@audited_options
@click.argument("kind", type=click.Choice(["ca", "tsa", "tlog", "ctlog", "tlog2"]))
@option("output", type=click.Choice(["text", "json"]), default="text")
def server_rotate_key(data_dir: Path, database_url: str | None, audit_log: str | None,
                      kind: str, output: str) -> None:
    """Replace the CA intermediate, TSA, tlog, CT log or Rekor v2 log (tlog2) key. The old
    key's validFor closes now and it stays in the trust root, so old bundles still verify.
    Restart every replica afterwards: each reads the keys at start."""
    from signer.service.bootstrap import rotate_key
    from signer.service.config import Settings
    from signer.service.runtime import publish_rotation

    settings = Settings(data_dir=data_dir, database_url=database_url, audit_log=audit_log)
    retired, new = rotate_key(settings, kind)
    published = publish_rotation(settings)
    if published is not None:
        click.echo(f"published the new trust root to TUF clients (targets version "
                   f"{published})", err=True)
    click.echo("restart every replica now; then re-export the trust root "
               "('signer trust-root export') wherever it is pinned", err=True)
    _print(output, f"rotated {kind}: {retired.key_file} retired at {new.start.isoformat()}, "
           f"{new.key_file} active", {"kind": kind, "retired": retired.to_json(),
                                       "active": new.to_json()})


def _tuf_root_notice(data_dir: Path, root_key: Path) -> None:
    click.echo(f"TUF root key: {root_key} (mode 0600) — move it offline; the service never "
               "reads it", err=True)
    click.echo(f"TUF root for clients: {data_dir / 'tuf' / '1.root.json'} "
               "('sigstore --instance <public-url>/tuf trust-instance 1.root.json')", err=True)


@cli.group("tuf")
def tuf_group() -> None:
    """The TUF repository that publishes the trust root and signing config (<public-url>/tuf)."""


@tuf_group.command("init")
@settings_options("data_dir")
def tuf_init(data_dir: Path) -> None:
    """Create the TUF repository of an initialized data directory (server init does it for
    new ones): the root key for the operator, the service's targets, snapshot and timestamp
    keys. The service publishes the targets at its next start."""
    from signer.service import tuf_repository
    from signer.service.config import passphrase

    _tuf_root_notice(data_dir, tuf_repository.initialize(data_dir, passphrase()))


@tuf_group.command("renew-root")
@settings_options("data_dir")
@click.option("--root-key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The TUF root key 'signer tuf init' wrote (tuf-root.key), back from offline.")
def tuf_renew_root(data_dir: Path, root_key: Path) -> None:
    """Sign the next TUF root version (same keys, valid a year more) before the current one
    expires; clients fetch it by themselves."""
    from signer.service import tuf_repository
    from signer.service.config import passphrase

    root = tuf_repository.renew_root(data_dir, root_key, passphrase()).signed
    click.echo(f"TUF root version {root.version}, expires {root.expires.isoformat()}; move "
               f"{root_key} offline again")


@server.command("start")
@settings_options(*OPTIONS)  # every setting
def server_start(**values: Any) -> None:
    """Serve the API, the TSA and the web page."""
    import uvicorn

    from signer.service import asgi, sequencer

    settings = Settings(**{**values, "data_dir": values["data_dir"].resolve(),
                           "insecure_issuers": issuer_set(",".join(values["insecure_issuers"]))})
    asgi.export_settings(settings)
    # One log sequencer for all workers; the check fails here, with a clear message, rather
    # than in each worker.
    with sequencer.running(settings, meanwhile=asgi.create):
        uvicorn.run("signer.service.asgi:create", factory=True, host=settings.host,
                    port=settings.port, workers=settings.workers, log_level=settings.log_level,
                    access_log=settings.log_level == "debug")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except SignerError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        if exc.fix:
            click.echo(f"fix: {exc.fix}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
