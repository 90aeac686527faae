"""OIDC issuers as data: each issuer has a kind, and the kind decides how its claims become
provenance (as Fulcio's issuer configuration does, ``config/identity/config.yaml``).

An issuer is resolved once per token: an operator's declaration (``signer issuer add``)
wins, else the well-known table below, else ``generic`` (issuer and subject only). The
mappings produce :class:`signer.provenance.Provenance` values by key; the OIDs stay in
``signer.provenance``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from signer.errors import UsageError
from signer.provenance import Claims, Provenance, claim_text

Kind = Literal["github", "gitlab", "buildkite", "generic"]
KINDS: tuple[Kind, ...] = get_args(Kind)
# Kinds whose provenance URLs point at a server the operator may name (GHES, self-managed).
SERVER_KINDS: frozenset[Kind] = frozenset({"github", "gitlab"})
BUILDKITE_SERVER = "https://buildkite.com"
MAX_URL_LENGTH = 512  # the policies.issuer and issuers.url columns


@dataclass(frozen=True, slots=True)
class Issuer:
    """A resolved issuer: what its tokens' claims mean and whether plain http is allowed.

    ``server_url`` is the web origin the provenance URLs are built on (None for generic).
    """

    url: str
    kind: Kind
    server_url: str | None
    allow_http: bool = False

    def provenance(self, claims: Claims, namespace: str) -> Provenance:
        """Provenance a verified token of this issuer proves."""
        server = self.server_url or ""
        values = {key: rule(claims, server) for key, rule in MAPPINGS[self.kind].items()}
        return Provenance(**values, namespace=namespace, provenance_source="token")

    def legacy_claims(self, claims: Claims) -> Claims | None:
        """Claims for Fulcio's legacy extensions 1.2–1.6: GitHub's only (their names are
        GitHub's claims); every kind still gets the legacy issuer 1.1."""
        return claims if self.kind == "github" else None


# -- recognition ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WellKnown:
    """An issuer URL form recognised without a declaration; ``server`` may name groups."""

    pattern: re.Pattern[str]
    kind: Kind
    server: str


WELL_KNOWN: tuple[WellKnown, ...] = (
    # github.com, and its per-enterprise form token.actions.githubusercontent.com/<slug>
    WellKnown(re.compile(r"https://token\.actions\.githubusercontent\.com"
                         r"(?:/[A-Za-z0-9][A-Za-z0-9_-]*)?"), "github", "https://github.com"),
    # GHE.com (GitHub Enterprise Cloud with data residency): token.actions.<sub>.ghe.com
    WellKnown(re.compile(r"https://token\.actions\.(?P<sub>[a-z0-9][a-z0-9-]*)\.ghe\.com"),
              "github", "https://{sub}.ghe.com"),
    WellKnown(re.compile(r"https://gitlab\.com"), "gitlab", "https://gitlab.com"),
    WellKnown(re.compile(r"https://agent\.buildkite\.com"), "buildkite", BUILDKITE_SERVER),
)


def normalized(url: str) -> str:
    return url.rstrip("/")


def well_known(url: str) -> Issuer | None:
    """The well-known issuer this exact URL is, or None (lookalike hosts are not)."""
    url = normalized(url)
    for entry in WELL_KNOWN:
        if match := entry.pattern.fullmatch(url):
            return Issuer(url, entry.kind, entry.server.format(**match.groupdict()))
    return None


def default_server_url(kind: Kind, url: str) -> str | None:
    """The server of an issuer nobody named one for: the well-known one, else (GHES
    ``https://HOST/_services/token``, self-managed GitLab) the issuer's own origin."""
    if kind == "generic":
        return None
    if kind == "buildkite":
        return BUILDKITE_SERVER
    known = well_known(url)
    if known is not None and known.kind == kind:
        return known.server_url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def resolve(url: str, declared: Mapping[str, Issuer],
            allow_http: frozenset[str] = frozenset()) -> Issuer:
    """The issuer a token's ``iss`` names: declared, else well-known, else generic.

    ``allow_http`` holds the issuers the start-time ``--insecure-issuer`` option allows.
    """
    url = normalized(url)
    insecure = url in allow_http
    issuer = declared.get(url) or well_known(url) or Issuer(url, "generic", None)
    if insecure and not issuer.allow_http:
        return Issuer(issuer.url, issuer.kind, issuer.server_url, allow_http=True)
    return issuer


def declare(url: str, kind: str, server_url: str | None = None, allow_http: bool = False
            ) -> Issuer:
    """An operator's declaration, checked: the Issuer it makes, or a UsageError saying why."""
    if kind not in KINDS:
        raise UsageError(f"'{kind[:40]}' is not an issuer type.",
                         f"Use one of {', '.join(KINDS)}.")
    url = normalized(url)
    check_url(url, allow_http, "issuer URL")
    if server_url is not None:
        if kind not in SERVER_KINDS:
            raise UsageError(f"A {kind} issuer takes no server URL.",
                             f"Drop --server-url: only {' and '.join(sorted(SERVER_KINDS))} "
                             "issuers build provenance on a server URL.")
        server_url = normalized(server_url)
        check_url(server_url, allow_http, "server URL")
    checked: Kind = next(k for k in KINDS if k == kind)
    return Issuer(url, checked, server_url or default_server_url(checked, url), allow_http)


def check_url(url: str, allow_http: bool, what: str = "issuer") -> None:
    """An issuer (or server) URL: https with a host, or http when the operator allowed it."""
    parts = urlsplit(url)
    if not url.isascii() or not url.isprintable() or len(url) > MAX_URL_LENGTH:
        raise UsageError(f"The {what} is not a printable ASCII URL of at most "
                         f"{MAX_URL_LENGTH} characters.", "Give the URL as tokens spell it.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(f"The {what} '{url}' has a query, fragment or user part.",
                         "Give the plain https URL, e.g. https://gitlab.example.com.")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and allow_http:
        return
    raise UsageError(
        f"The {what} '{url}' is not an https URL.",
        "OIDC issuers must be served over https; for a local test issuer declare it with "
        "'signer issuer add --url URL --type TYPE --allow-http' (or start the server with "
        "--insecure-issuer, SIGNER_INSECURE_ISSUER).",
    )


# -- mappings: claims (+ the issuer's server URL) → provenance fields, one table per kind ----
Rule = Callable[[Claims, str], str | None]


def _claim(name: str) -> Rule:
    return lambda claims, _server: claim_text(claims.get(name))


def _url(template: str, *names: str, base: str = "{server}/") -> Rule:
    """``base`` + ``template`` filled with the claims; None if any claim is missing."""
    def build(claims: Claims, server: str) -> str | None:
        values = [claim_text(claims.get(n)) for n in names]
        if any(v is None for v in values):
            return None
        return base.format(server=server) + template.format(*values)

    return build


def _gitlab_ref(claims: Claims, _server: str) -> str | None:
    # GitLab's ref is a bare name; ref_type says which namespace of refs it is in.
    ref, ref_type = claim_text(claims.get("ref")), claims.get("ref_type")
    prefix = {"branch": "refs/heads/", "tag": "refs/tags/"}.get(str(ref_type))
    return None if ref is None or prefix is None else prefix + ref


# Fulcio's github-workflow templates; the server is https://github.com, a GHE.com or a GHES.
GITHUB: dict[str, Rule] = {
    "issuer": _claim("iss"),
    "build_signer_uri": _url("{}", "job_workflow_ref"),
    "build_signer_digest": _claim("job_workflow_sha"),
    "runner_environment": _claim("runner_environment"),
    "source_repository": _url("{}", "repository"),
    "source_repository_digest": _claim("sha"),
    "source_repository_ref": _claim("ref"),
    "source_repository_identifier": _claim("repository_id"),
    "source_repository_owner": _url("{}", "repository_owner"),
    "source_repository_owner_identifier": _claim("repository_owner_id"),
    "build_config_uri": _url("{}", "workflow_ref"),
    "build_config_digest": _claim("workflow_sha"),
    "build_trigger": _claim("event_name"),
    "run_invocation_uri": _url("{}/actions/runs/{}/attempts/{}", "repository", "run_id",
                               "run_attempt"),
    "build_config_name": _claim("workflow"),
}

# Fulcio's gitlab-pipeline templates (GitLab CI id_tokens); the server is the instance.
GITLAB: dict[str, Rule] = {
    "issuer": _claim("iss"),
    # ci_config_ref_uri is host/path without a scheme: gitlab.com/g/p//.gitlab-ci.yml@refs/…
    "build_signer_uri": _url("{}", "ci_config_ref_uri", base="https://"),
    "build_signer_digest": _claim("ci_config_sha"),
    "runner_environment": _claim("runner_environment"),
    "source_repository": _url("{}", "project_path"),
    "source_repository_digest": _claim("sha"),
    "source_repository_ref": _gitlab_ref,
    "source_repository_identifier": _claim("project_id"),
    "source_repository_owner": _url("{}", "namespace_path"),
    "source_repository_owner_identifier": _claim("namespace_id"),
    "build_config_uri": _url("{}", "ci_config_ref_uri", base="https://"),
    "build_config_digest": _claim("ci_config_sha"),
    "build_trigger": _claim("pipeline_source"),
    "run_invocation_uri": _url("{}/-/jobs/{}", "project_path", "job_id"),
}

# Fulcio's buildkite-job templates: the job, the commit, the runner and the trigger; a
# Buildkite token names no repository URL, so none is written.
BUILDKITE: dict[str, Rule] = {
    "issuer": _claim("iss"),
    "runner_environment": _claim("runner_environment"),
    "source_repository_digest": _claim("build_commit"),
    "build_trigger": _claim("build_source"),
    "run_invocation_uri": _url("{}/{}/builds/{}#{}", "organization_slug", "pipeline_slug",
                               "build_number", "job_id"),
}

# An issuer nobody described: only what every OIDC token means (the subject is the identity).
GENERIC: dict[str, Rule] = {"issuer": _claim("iss")}

MAPPINGS: dict[Kind, dict[str, Rule]] = {
    "github": GITHUB, "gitlab": GITLAB, "buildkite": BUILDKITE, "generic": GENERIC,
}
