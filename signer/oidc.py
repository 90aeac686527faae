"""The GitHub Actions OIDC token, requested from the runner's token endpoint."""

from __future__ import annotations

import os

import requests

from signer.errors import AuthenticationError, Unavailable

REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
DEFAULT_AUDIENCE = "signer"
NO_TOKEN_FIX = (
    "Give the job 'permissions: id-token: write' in the workflow. Pull requests from forks "
    "never get an OIDC token: sign in a workflow that runs on the base repository "
    "(push, release, workflow_dispatch), or use an API key."
)


def github_actions_token(audience: str = DEFAULT_AUDIENCE, timeout: float = 10) -> str:
    url, bearer = os.environ.get(REQUEST_URL_ENV), os.environ.get(REQUEST_TOKEN_ENV)
    if not url or not bearer:
        raise AuthenticationError(
            f"No GitHub Actions OIDC token is available ({REQUEST_URL_ENV} / "
            f"{REQUEST_TOKEN_ENV} are not set).", NO_TOKEN_FIX)
    separator = "&" if "?" in url else "?"
    try:
        response = requests.get(
            f"{url}{separator}audience={audience}",
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise Unavailable("The runner's OIDC token endpoint cannot be reached.",
                          "Re-run the job; the runner may be shutting down.") from exc
    if response.status_code in (401, 403):
        raise AuthenticationError(
            f"The runner refused the OIDC token request ({response.status_code}).",
            NO_TOKEN_FIX)
    if response.status_code != 200:
        raise Unavailable(f"The runner's token endpoint answered {response.status_code}.",
                          "Re-run the job.")
    try:
        token = response.json()["value"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable("The runner's token endpoint sent no token.", "Re-run the job.") from exc
    if not isinstance(token, str) or not token:
        raise Unavailable("The runner's token endpoint sent an empty token.", "Re-run the job.")
    return token
