# One image for the three actions: action.yml, verify/action.yml and revoke/action.yml run it
# (docker-action.sh) with args [sign], [verify] or [revoke]: on a release tag the image the
# release pushed, by digest; elsewhere the runner builds this file with the repository root as
# context. The runner runs it with --workdir /github/workspace, so there is no WORKDIR and no
# USER here (the runner's mounted files belong to root).
#
# BASE_IMAGE: an official slim Python, pinned by digest. The tests pass a locally built
# Debian base instead (scripts/prereqs/30-docker.sh); any base with python3 and venv works.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# binutils, for strip: in this build stage only, the image itself has none. Unpinned: the
# base's Debian release fixes the version, and only `strip` is used.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
# Pinned, hashed dependencies first (a layer that changes only with requirements/image.txt).
# The compiled extensions lose their symbol tables (strip --strip-unneeded keeps the dynamic
# symbols they are loaded by: 7 MB less); type stubs and certifi's tests go; no bytecode yet.
COPY requirements/image.txt /src/requirements/image.txt
RUN python3 -m venv /opt/signer \
 && /opt/signer/bin/pip install --no-deps --require-hashes --only-binary=:all: --no-compile \
      -r /src/requirements/image.txt \
 && find /opt/signer/lib -name '*.so' -exec strip --strip-unneeded {} + \
 && find /opt/signer/lib -name '*.pyi' -delete \
 && rm -rf /opt/signer/lib/python3*/site-packages/certifi/tests
# Then the package itself, built offline with the pinned setuptools; pip and setuptools leave.
# Last, scripts/pack_site_packages.py: bytecode for every module, and the pure-Python
# distributions (source and bytecode) deflated into one zip on sys.path, which zipimport
# reads as the embeddable Python distribution reads its standard library: 6 MB less, and a
# start compiles nothing.
COPY pyproject.toml README.md* /src/
COPY signer /src/signer
COPY scripts/pack_site_packages.py /src/pack_site_packages.py
RUN /opt/signer/bin/pip install --no-deps --no-index --no-build-isolation --no-compile /src \
 && /opt/signer/bin/pip uninstall --yes setuptools pip \
 && /opt/signer/bin/python /src/pack_site_packages.py \
      "$(/opt/signer/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="signer action" \
      org.opencontainers.image.description="Keyless signing: sign, verify and revoke from GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/signer /opt/signer
COPY entrypoint.py /opt/signer/entrypoint.py
ENTRYPOINT ["/opt/signer/bin/python", "/opt/signer/entrypoint.py"]
