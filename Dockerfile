# One image for the three actions: action.yml (args [sign]), verify/action.yml ([verify]) and
# revoke/action.yml ([revoke]). The runner builds it with the repository root as context and
# runs it with --workdir /github/workspace, so there is no WORKDIR and no USER here (the
# runner's mounted files belong to root).
#
# BASE_IMAGE: an official slim Python, pinned by digest. The tests pass a locally built
# Debian base instead (scripts/prereqs/30-docker.sh); any base with python3 and venv works.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# Pinned, hashed dependencies first (a layer that changes only with requirements/image.txt).
COPY requirements/image.txt /src/requirements/image.txt
RUN python3 -m venv /opt/signer \
 && /opt/signer/bin/pip install --no-deps --require-hashes --only-binary=:all: \
      -r /src/requirements/image.txt
# Then the package itself, built offline with the pinned setuptools (pip compiles the
# bytecode, so a start compiles nothing); pip and setuptools leave.
COPY pyproject.toml README.md* /src/
COPY signer /src/signer
RUN /opt/signer/bin/pip install --no-deps --no-index --no-build-isolation /src \
 && /opt/signer/bin/pip uninstall --yes setuptools pip

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="signer action" \
      org.opencontainers.image.description="Keyless signing: sign, verify and revoke from GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/signer /opt/signer
COPY entrypoint.py /opt/signer/entrypoint.py
ENTRYPOINT ["/opt/signer/bin/python", "/opt/signer/entrypoint.py"]
