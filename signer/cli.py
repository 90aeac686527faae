"""The ``signer`` command: parse → call → print. Every flag is also ``SIGNER_<FLAG>``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from signer import monitor, operations
from signer.artifact import ArtifactRef, parse_ref, ref_for_file
from signer.client import DEFAULT_API, Client
from signer.errors import SignerError, UsageError
from signer.oidc import DEFAULT_AUDIENCE, github_actions_token
from signer.provenance import FLAG_FIELDS

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
@provenance_options
@connection_options
def sign(name: str | None, file: Path | None, bundle: Path | None,
         certificate_identity: str | None, output: str, namespace: str | None,
         **kwargs: Any) -> None:
    """Sign an artifact by digest; writes a Sigstore bundle and prints the signature id."""
    declared = _provenance(kwargs)
    client = _client(**kwargs)
    ref = _ref(name, file)
    signed = operations.sign(client, _namespace(namespace), ref, declared, bundle)
    if certificate_identity and certificate_identity != signed.identity:
        raise UsageError(f"The certificate was issued to '{signed.identity}', not "
                         f"'{certificate_identity}'.", "Drop --certificate-identity.")
    if output == "text":
        click.echo(f"signed {signed.ref} as {signed.identity}; bundle: {signed.bundle_path}",
                   err=True)
    _print(output, signed.id, signed.as_dict())


@artifact.command()
@option("name", help="name@sha256:<64 hex> (with --file: the name it was signed as).")
@option("file", type=click.Path(dir_okay=False, path_type=Path), help="Verify a local file.")
@option("certificate-identity", help="The exact identity that must have signed.")
@option("certificate-identity-regexp", help="A regular expression the identity must match.")
@option("trust-root", type=click.Path(dir_okay=False, path_type=Path),
        help="Pinned trusted_root.json (else fetched from --api, with a note).")
@option("bundle", type=click.Path(dir_okay=False, path_type=Path),
        help="Verify this bundle offline (needs --trust-root); revocation is not checked.")
@provenance_options
@connection_options
def verify(name: str | None, file: Path | None, certificate_identity: str | None,
           certificate_identity_regexp: str | None, trust_root: Path | None,
           bundle: Path | None, output: str, namespace: str | None, **kwargs: Any) -> None:
    """Verify every signature of an artifact: chain, timestamp, signature, identity,
    provenance, revocation. Exits 1 when none passes."""
    provenance = _provenance(kwargs)
    issuer = provenance.pop("issuer")
    ref = _ref(name, file)
    offline = bundle is not None
    client = None if offline else _client(**kwargs)
    report = operations.verify(
        ref, operations.load_trust(client, trust_root), issuer, certificate_identity,
        certificate_identity_regexp, provenance, client,
        None if offline else _namespace(namespace), bundle)
    data = {
        "verified": report.ok, "name": str(ref), "revocation_checked": report.revocation_checked,
        "entries": [{
            "id": r.entry_id, "verified": r.ok, "error": r.error,
            "identity": r.verified.identity if r.verified else None,
            "signed_at": r.verified.signed_at.isoformat() if r.verified else None,
            "provenance": r.verified.provenance.as_dict() if r.verified else None,
        } for r in report.results],
    }
    text = ("verified: " if report.ok else "verification failed: ") + str(ref) + "\n" \
        + report.explain()
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
@connection_options
def list_(name_prefix: str, limit: int, output: str, namespace: str | None, **kwargs: Any
          ) -> None:
    """List signatures, newest first."""
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
def export_trust_root(api: str, out: Path | None, client_config: bool) -> None:
    """Write the service's trusted_root.json (or the client trust config around it)."""
    client = Client(api)
    if client_config:
        out = out or Path("trust_config.json")
        out.write_bytes(client.trust_config())
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
        default=Path("signer-checkpoint.txt"), show_default=True,
        help="The last checkpoint this monitor saw; updated when the new one is proven.")
@option("output", type=click.Choice(["text", "json"]), default="text")
def log_verify(api: str, trust_root: Path | None, checkpoint: Path, output: str) -> None:
    """Monitor the log: the latest checkpoint is signed by the pinned key and extends the
    saved one (consistency proof). Exits 1 on a fork or a bad signature."""
    client = Client(api)
    result = monitor.check(client, operations.load_trust(client, trust_root), checkpoint)
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


def server_options(func: F) -> F:
    for decorator in reversed([
        option("data-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
               help="Keys, certificates and the SQLite database."),
        option("database-url", help="postgresql://… for replicas [default: SQLite in data-dir]"),
    ]):
        func = decorator(func)
    return func


@server.command("init")
@server_options
@option("pkcs11-module", help="Keys on a PKCS#11 token: the module (.so) [default: key files].")
@option("pkcs11-token-label", help="The token's label (its PIN: env SIGNER_PKCS11_PIN).")
@option("pkcs11-key-label", "pkcs11_key_labels", multiple=True, metavar="KIND=LABEL",
        help="Use this existing token key for KIND (root, ca, tsa, tlog, ctlog) instead of "
             "generating one. Repeatable.")
@option("pkcs11-label-prefix", default="", help="Prefix of the generated keys' labels (several "
        "services on one token).")
def server_init(data_dir: Path, database_url: str | None, pkcs11_module: str | None,
                pkcs11_token_label: str | None, pkcs11_key_labels: tuple[str, ...],
                pkcs11_label_prefix: str) -> None:
    """Create the CA, the TSA, the database; print the admin API key once."""
    from signer.service.bootstrap import initialize
    from signer.service.config import Settings

    reference = None
    if pkcs11_module or pkcs11_token_label or pkcs11_key_labels or pkcs11_label_prefix:
        if not (pkcs11_module and pkcs11_token_label):
            raise UsageError("Keys on a PKCS#11 token need both --pkcs11-module and "
                             "--pkcs11-token-label.")
        from signer.service import pkcs11

        reference = pkcs11.Reference(str(Path(pkcs11_module).absolute()), pkcs11_token_label,
                                     pkcs11.key_labels(pkcs11_key_labels), pkcs11_label_prefix)
    token = initialize(Settings(data_dir=data_dir, database_url=database_url), reference)
    click.echo(f"initialized {data_dir}", err=True)
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
@server_options
def server_rotate_admin_key(data_dir: Path, database_url: str | None) -> None:
    """Create a new server admin key and revoke the old one(s); prints the new key once."""
    from signer.service.admin_keys import rotate
    from signer.service.config import Settings

    token, revoked = rotate(Settings(data_dir=data_dir, database_url=database_url))
    click.echo(f"revoked {len(revoked)} admin key(s): {', '.join(revoked) or '-'}", err=True)
    click.echo("new admin API key (shown once, store it as a secret):", err=True)
    click.echo(token)


@server.command("rotate-key")
@server_options
@click.argument("kind", type=click.Choice(["ca", "tsa", "tlog", "ctlog"]))
@option("output", type=click.Choice(["text", "json"]), default="text")
def server_rotate_key(data_dir: Path, database_url: str | None, kind: str, output: str
                      ) -> None:
    """Replace the CA intermediate, TSA, tlog or CT log key. The old key's validFor closes
    now and it stays in the trust root, so old bundles still verify. Restart every replica
    afterwards: each reads the keys at start."""
    from signer.service.bootstrap import rotate_key
    from signer.service.config import Settings

    retired, new = rotate_key(Settings(data_dir=data_dir, database_url=database_url), kind)
    click.echo("restart every replica now; then re-export the trust root "
               "('signer trust-root export') wherever it is pinned", err=True)
    _print(output, f"rotated {kind}: {retired.key_file} retired at {new.start.isoformat()}, "
           f"{new.key_file} active", {"kind": kind, "retired": retired.to_json(),
                                       "active": new.to_json()})


@server.command("start")
@server_options
@option("host", default="127.0.0.1", show_default=True)
@option("port", type=int, default=8080, show_default=True)
@option("public-url", help="The URL clients use [default: http://HOST:PORT].")
@option("audience", default=DEFAULT_AUDIENCE, show_default=True,
        help="Required 'aud' of OIDC tokens.")
@option("insecure-issuer", "insecure_issuers", multiple=True,
        help="Allow this plain-http OIDC issuer (tests only). Env: comma-separated.")
@option("cert-validity-minutes", type=click.IntRange(1, 10), default=5, show_default=True)
@option("workers", type=click.IntRange(1, 64), default=1, show_default=True)
@option("log-level", default="info", show_default=True)
def server_start(data_dir: Path, database_url: str | None, host: str, port: int,
                 public_url: str | None, audience: str, insecure_issuers: tuple[str, ...],
                 cert_validity_minutes: int, workers: int, log_level: str) -> None:
    """Serve the API, the TSA and the web page."""
    import uvicorn

    from signer.service import asgi

    issuers = [i for value in insecure_issuers for i in value.split(",") if i]
    asgi.export_settings(data_dir=data_dir, database_url=database_url, host=host, port=port,
                         public_url=public_url, audience=audience, insecure_issuers=issuers,
                         cert_validity_minutes=cert_validity_minutes)
    asgi.create()  # fail here, with a clear message, rather than in each worker
    uvicorn.run("signer.service.asgi:create", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=log_level == "debug")


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
