"""What routes ask FastAPI for: the running service, and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from signer.service import audit, limits
from signer.service.auth import Principal
from signer.service.runtime import Runtime


def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


def principal(request: Request, authorization: Annotated[str | None, Header()] = None
              ) -> Principal:
    caller = runtime(request).auth.authenticate(authorization)
    audit.identify(caller)
    limits.check(request, caller)
    return caller


RuntimeDep = Annotated[Runtime, Depends(runtime)]
PrincipalDep = Annotated[Principal, Depends(principal)]
