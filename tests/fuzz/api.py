"""Schemathesis against a running service's /openapi.json: the runner the CI test and
bench/fuzz_api.py share.

Every operation is fuzzed in passes that differ in what is fixed: positive data with a
tenant's API key and its namespace (to reach the code behind authorization), positive data
with the server admin key (the admin routes), negative data (schema violations) with the
tenant key, and data with the generated Authorization header (anything at all). Each
response is checked for: no 5xx, a declared status code, a declared content type, a body
and headers that match the schema, and negative data being rejected.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


@dataclass
class Report:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    per_operation: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)  # 5xx of known bugs (not skipped)
    skipped: Counter[str] = field(default_factory=Counter)  # cases of known bugs not sent
    seconds: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        known = sum(self.known.values())
        return (f"{self.requests} requests over {len(self.per_operation)} operations in "
                f"{self.seconds:.0f} s; {len(self.server_errors) + known} 5xx "
                f"({known} of known bugs), {len(self.violations)} schema violations; "
                f"{sum(self.skipped.values())} known-bug cases not sent; statuses {statuses}")


@dataclass
class Pass:
    label: str
    mode: GenerationMode
    token: str | None  # a fixed bearer token, or None: the generated header is sent
    namespace: str | None  # a fixed namespace (query and path), or None: generated


INT64 = 2**63 - 1


def known_bug(case: Any) -> str | None:
    """The bug a generated case would hit that an xfail test pins, if any: none today (NUL
    characters and out-of-range integers, once 500s, are now refused with a 4xx)."""
    return None


def _values(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _values(value)]
    if isinstance(node, list | tuple):
        return [v for value in node for v in _values(value)]
    if isinstance(node, str) and len(node) < 400 and re.fullmatch(r"-?[0-9]+", node):
        return [int(node)]
    return [node]


def run(base_url: str, tenant_key: str, namespace: str, admin_key: str,
        examples: int, *, send_known_bugs: bool = False, seed: int | None = None,
        log: Callable[[str], None] = lambda _: None) -> Report:
    """``examples`` generated cases per operation and pass (4 passes).

    Cases that would hit a known bug are not sent (``skipped``), or with
    ``send_known_bugs`` sent and their 5xx counted apart (``known``)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    passes = [
        Pass("tenant", GenerationMode.POSITIVE, tenant_key, namespace),
        Pass("admin", GenerationMode.POSITIVE, admin_key, None),
        Pass("negative", GenerationMode.NEGATIVE, tenant_key, namespace),
        Pass("anonymous", GenerationMode.POSITIVE, None, None),
    ]
    report = Report()
    started = time.monotonic()
    session = requests.Session()
    for operation in operations:
        for p in passes:
            fixed: dict[str, Any] = {}
            if p.token is not None:
                fixed["headers"] = {"authorization": f"Bearer {p.token}"}
            if p.namespace is not None:
                if "{namespace}" in operation.path:
                    fixed["path_parameters"] = {"namespace": p.namespace}
                if "namespace" in _query_names(operation):
                    fixed["query"] = {"namespace": p.namespace}
            try:
                strategy = operation.as_strategy(generation_mode=p.mode, **fixed)
                _fuzz(operation.label, p, strategy, session, base_url, report, examples,
                      send_known_bugs, seed)
            except (Unsatisfiable, FailedHealthCheck) as exc:
                # e.g. no negative case exists once namespace and token are fixed
                log(f"{operation.label} [{p.label}]: nothing to generate ({type(exc).__name__})")
        log(f"{operation.label}: {report.per_operation[operation.label]} requests")
    report.seconds = time.monotonic() - started
    return report


def _query_names(operation: Any) -> set[str]:
    definition = getattr(operation, "definition", None)
    raw = getattr(definition, "raw", None) or {}
    return {p.get("name") for p in raw.get("parameters", []) if p.get("in") == "query"}


def _fuzz(label: str, p: Pass, strategy: Any, session: requests.Session, base_url: str,
          report: Report, examples: int, send_known_bugs: bool, seed: int | None) -> None:
    checks = NEGATIVE_CHECKS if p.mode == GenerationMode.NEGATIVE else CHECKS

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=[Phase.explicit, Phase.generate], print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(case: Any) -> None:
        bug = known_bug(case)
        if bug and not send_known_bugs:
            report.skipped[bug] += 1
            return
        response = case.call(base_url=base_url, session=session, timeout=30)
        report.requests += 1
        report.per_operation[label] += 1
        report.statuses[response.status_code] += 1
        if response.status_code >= 500 and bug:
            report.known[bug] += 1
        elif response.status_code >= 500:
            report.server_errors.append(f"{label} [{p.label}] {response.status_code}: "
                                        f"{case.as_curl_command()}")
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            if response.status_code < 500:
                report.violations.append(f"{label} [{p.label}]: {_failures(exc)} "
                                         f"{case.as_curl_command()}"[:1500])

    if seed is not None:
        from hypothesis import seed as with_seed

        one = with_seed(seed)(one)
    one()


def _failures(exc: BaseException) -> str:
    inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    return "; ".join(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                     for e in inner)
