"""The job summaries, as Markdown: pure functions of what a command did."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from signer.errors import SignerError
from signer.operations import Attested, Signed
from signer.provenance import FIELDS
from signer.registry import ImageRef, Pushed
from signer.verification import EntryResult, Report
from signer.verification.verifier import REVOCATION_STEP, STEPS

# A summary that lists hundreds of entries helps nobody; the rest are counted.
MAX_ENTRIES_SHOWN = 20
PASS, FAIL, SKIPPED = "✅ pass", "❌ fail", "— not reached"


def cell(value: object) -> str:
    """A value inside a table cell: one line, pipes escaped, as code."""
    text = " ".join(str(value).split()).replace("|", "\\|").replace("`", "'")
    return f"`{text}`" if text else "—"


def table(header: tuple[str, str], rows: Iterable[tuple[str, str]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def provenance_table(provenance: Mapping[str, str]) -> str:
    rows = [(f.label, cell(provenance[f.key])) for f in FIELDS if provenance.get(f.key)]
    return table(("Provenance", "Value"), rows)


def signed(result: Signed, namespace: str, workflow_path: str | None = None) -> str:
    source = result.provenance.get("provenance_source", "")
    origin = ("proved by the job's OIDC token" if source == "token"
              else "declared by the API key's holder, not proved by a token")
    rows = [
        ("Artifact", cell(result.ref)),
        ("Identity", cell(result.identity)),
        ("Issuer", cell(result.issuer)),
        ("Timestamp (RFC 3161)", cell(result.signed_at)),
        ("Signature id", cell(result.id)),
        ("Namespace", cell(namespace)),
        ("Bundle", cell(result.bundle_path)),
    ]
    if workflow_path:
        rows.append(("Workflow file (GitHub API)", cell(workflow_path)))
    return "\n\n".join([
        f"## ✅ Signed {cell(result.ref)}",
        table(("", ""), rows),
        f"### Provenance\n\nRecorded in the certificate, {origin}.",
        provenance_table(result.provenance),
    ])


def pushed(image: ImageRef, result: Pushed) -> str:
    rows = [
        ("Image", cell(image)),
        ("Referrer", cell(f"{image.registry}/{image.repository}@{result.digest}")),
        ("Index", cell(result.index)),
        ("Added", "yes" if result.added else "no: the same bundle was attached already"),
    ]
    return "\n\n".join([
        "### Attached to the image",
        "The bundle is an OCI 1.1 referrer of the image in its registry: deploy-time checks "
        "find it next to the image.",
        table(("", ""), rows),
    ])


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a verify step was asked to check, for the summary's header."""

    issuer: str
    identity: str
    identity_regexp: str
    provenance: Mapping[str, str]
    trust_root: str
    offline: bool
    source: str = "service"  # where the signatures came from: service, bundle, registry


def failed_step_name(result: EntryResult) -> str:
    return STEPS[result.failed_step] if result.failed_step is not None else ""


def step_rows(result: EntryResult, revocation_checked: bool) -> list[tuple[str, str]]:
    """Pass / fail / not reached for each numbered step of the verifier, for one entry."""
    failed = None if result.ok else result.failed_step
    if not result.ok and failed is None:
        return [("error", f"{FAIL}: {cell(result.error)}")]
    rows = []
    for number, name in STEPS.items():
        label = f"{number}. {name}"
        if number == REVOCATION_STEP and not revocation_checked:
            rows.append((label, "— not checked (offline)"))
        elif failed is None or number < failed:
            rows.append((label, PASS))
        elif number == failed:
            rows.append((label, f"{FAIL}: {cell(result.reason or result.error)}"))
        else:
            rows.append((label, SKIPPED))
    return rows


def verified(name: str, report: Report, expected: Expectation) -> str:
    title = (f"## ✅ Verified {cell(name)}" if report.ok
             else f"## ❌ Verification failed for {cell(name)}")
    asked = [("OIDC issuer", cell(expected.issuer))]
    if expected.identity:
        asked.append(("Identity", cell(expected.identity)))
    if expected.identity_regexp:
        asked.append(("Identity (regexp)", cell(expected.identity_regexp)))
    labels = {f.key: f.label for f in FIELDS}
    asked += [(labels[k], cell(v)) for k, v in expected.provenance.items() if v]
    asked.append(("Trust root", cell(expected.trust_root) if expected.trust_root
                  else "fetched from the service (not pinned)"))
    from_registry = expected.source == "registry"
    asked.append(("Revocation", "checked with the service" if report.revocation_checked
                  else "not checked (offline: bundles from the registry)" if from_registry
                  else "not checked (offline bundle)"))
    if from_registry:
        asked.append(("Signatures", "every bundle attached to the image in its registry, "
                      "verified offline" + "".join(f"; {note}" for note in report.notes)))
    parts = [title, table(("Expected", ""), asked)]
    if not report.results:
        parts.append("No signature of this artifact was found.")
    for result in report.results[:MAX_ENTRIES_SHOWN]:
        head = f"### {'✅' if result.ok else '❌'} Entry {cell(result.entry_id)}"
        if result.verified is not None:
            head += (f"\n\nSigned by {cell(result.verified.identity)} at "
                     f"{cell(result.verified.signed_at.isoformat())}")
        parts.append(head)
        parts.append(table(("Step", "Result"), step_rows(result, report.revocation_checked)))
    if len(report.results) > MAX_ENTRIES_SHOWN:
        parts.append(f"… and {len(report.results) - MAX_ENTRIES_SHOWN} more entries.")
    return "\n\n".join(parts)


def revoked(name: str, ref: str, reason: str, response: Mapping[str, object]) -> str:
    count = response.get("revoked_count", 0)
    rows = [
        ("Artifact", cell(name)),
        ("Source repository ref", cell(ref)),
        ("Reason", cell(reason)),
        ("Revoked signatures", cell(count)),
        ("Revocation id", cell(response.get("id", ""))),
        ("Revoked at", cell(response.get("revoked_at", ""))),
    ]
    icon = "✅" if count else "⚠️"
    return "\n\n".join([f"## {icon} Revoked {count} signature(s)", table(("", ""), rows),
                        "Nothing was deleted: verification of these signatures now fails at "
                        f"step {REVOCATION_STEP} ({STEPS[REVOCATION_STEP]})."])


# The statement is shown whole up to this size; an SBOM of megabytes is cut (it is in the
# bundle, and on the service's page).
MAX_STATEMENT_SHOWN = 64 * 1024


def attested(result: Attested, namespace: str) -> str:
    rows = [("Artifact", cell(result.ref)), ("Predicate type", cell(result.predicate_type)),
            ("Attestation", cell(result.id)), ("Namespace", cell(namespace)),
            ("Identity", cell(result.identity)), ("Issuer", cell(result.issuer)),
            ("Bundle", cell(result.bundle_path))]
    text = json.dumps(result.statement, indent=2, ensure_ascii=False)
    if len(text) > MAX_STATEMENT_SHOWN:
        text = (text[:MAX_STATEMENT_SHOWN]
                + f"\n… ({len(text)} characters; the rest is in the bundle)")
    return (f"## ✅ Attested `{result.ref}`\n\n{table(('', ''), rows)}\n\n"
            f"<details open><summary>In-toto statement</summary>\n\n```json\n"
            f"{text.replace('```', '` ` `')}\n```\n\n</details>\n")


def failure(command: str, error: SignerError, yaml_hint: str = "") -> str:
    parts = [f"## ❌ signer {command} failed", f"**What happened:** {error.detail}"]
    if error.fix:
        parts.append(f"**What to do:** {error.fix}")
    if yaml_hint:
        parts.append(f"```yaml\n{yaml_hint.strip()}\n```")
    return "\n\n".join(parts)
