"""The GitHub REST API, for what a job without an OIDC token can still look up: its workflow run.

With an API key instead of a token, the action records provenance the signer declares. The
runner's ``GITHUB_*`` variables say which workflow runs; given the job's ``GITHUB_TOKEN``, the
workflow run (``GET /repos/{owner}/{repo}/actions/runs/{run_id}``) says it from GitHub's side.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from github import Auth, Github, GithubException

from signer.errors import AuthenticationError, NotFound, PermissionDenied, SignerError, Unavailable

DEFAULT_API_URL = "https://api.github.com"
# One look-up per job: fail within the step's patience rather than retry for minutes.
TIMEOUT_SECONDS = 15
RETRIES = 2
_NEEDS_ACTIONS_READ = (
    "Give the job 'permissions: actions: read' (and 'contents: read'), and pass "
    "'github_token: ${{ github.token }}'; or leave github_token empty to use the runner's "
    "GITHUB_* variables."
)


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """What GitHub says about one run of a workflow."""

    id: int
    name: str
    path: str
    head_sha: str
    head_branch: str | None
    event: str
    run_attempt: int
    html_url: str


def workflow_run(token: str, repository: str, run_id: int,
                 api_url: str = DEFAULT_API_URL) -> WorkflowRun:
    """The workflow run ``run_id`` of ``repository`` (``owner/name``), read with ``token``."""
    github = Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"),
                    timeout=TIMEOUT_SECONDS, retry=RETRIES, seconds_between_requests=None,
                    lazy=True)
    where = f"workflow run {run_id} of {repository} ({api_url})"
    try:
        run = github.get_repo(repository).get_workflow_run(run_id)
        return WorkflowRun(run.id, run.name, run.path, run.head_sha, run.head_branch,
                           run.event, run.run_attempt, run.html_url)
    except GithubException as exc:
        raise _refusal(exc.status, where) from exc
    except requests.RequestException as exc:
        raise Unavailable(f"GitHub's API cannot be reached for the {where} "
                          f"({exc.__class__.__name__}).", "Re-run the job.") from exc
    finally:
        github.close()


def _refusal(status: int, where: str) -> SignerError:
    """GitHub's answer, by status (pygithub's subclasses depend on the message text)."""
    if status == 401:
        return AuthenticationError(f"GitHub refused github_token reading the {where}.",
                                   _NEEDS_ACTIONS_READ)
    if status == 403:
        return PermissionDenied(f"GitHub denied reading the {where} (403).", _NEEDS_ACTIONS_READ)
    if status == 404:
        return NotFound(f"GitHub found no {where}; a token without 'actions: read' sees none.",
                        _NEEDS_ACTIONS_READ)
    if status >= 500:
        return Unavailable(f"GitHub answered {status} reading the {where}.", "Re-run the job.")
    return SignerError(f"GitHub answered {status} reading the {where}.", _NEEDS_ACTIONS_READ)
