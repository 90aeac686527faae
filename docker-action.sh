#!/usr/bin/env bash
# docker-action.sh sign|verify|revoke|attest: the first step of the composite actions (action.yml,
# verify/, revoke/, attest/action.yml). It writes the Docker container action their next step
# runs, at the fixed path that step names (a composite step cannot 'uses:' a path of its own
# action, only one in the workspace; pypa/gh-action-pypi-publish does the same):
#
#   $GITHUB_WORKSPACE/.github/.tmp/.generated-actions/signer-<command>/action.yml
#
# Its image is the one action-image.txt records, next to this script: on a release tag the
# release workflow (.github/workflows/release.yml) commits there the image it pushed, pinned by
# digest, and the runner pulls and runs it. A ref without that file (a branch, a fork) gets
# the Dockerfile instead, built by the runner as before. Either way the runner runs the
# container as it runs any Docker action (inputs, mounts, outputs, summary, annotations).
#
# With SIGNER_DOCKER_CONFIG=copy (the action pushes to or reads from a registry) it also
# copies Docker's config.json of the runner ($DOCKER_CONFIG, else ~/.docker), where
# docker/login-action and 'docker login' keep registry credentials, to docker-config/ next to
# the generated action: a container action sees the workspace but not the runner's home. The
# step's DOCKER_CONFIG names that copy; the last step of the action removes it. Nothing of
# it is printed.
set -euo pipefail

command="${1:?usage: docker-action.sh sign|verify|revoke|attest}"
case "$command" in sign | verify | revoke | attest) ;; *)
  echo "::error title=signer action::unknown command '$command'"; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
record="$root/action-image.txt"
dir="${GITHUB_WORKSPACE:?GITHUB_WORKSPACE is not set: run this in a GitHub Actions job}"
dir="$dir/.github/.tmp/.generated-actions/signer-$command"
# Content-addressed only: 'registry/name@sha256:<64 hex>' (pulled), or the 'sha256:<64 hex>'
# id of an image the runner's Docker already has (the tests pin their local build so). A tag
# could move to other content, so it is refused.
pinned='^([a-z0-9][a-z0-9._/:-]*@)?sha256:[0-9a-f]{64}$'

if [[ -s "$record" ]]; then
  image="$(tr -d '[:space:]' <"$record")"
  if [[ ! "$image" =~ $pinned ]]; then
    echo "::error title=signer action::$record holds '$image', not an image pinned by" \
      "digest ('ghcr.io/<owner>/signer@sha256:<64 hex>'): restore the file the release" \
      "workflow committed, or delete it to build from the Dockerfile."
    exit 2
  fi
  runs_image="docker://$image"
  echo "signer $command: running the released image $image"
else
  mkdir -p "$dir"
  runs_image="$(realpath -m --relative-to="$dir" "$root/Dockerfile")"
  echo "signer $command: this ref has no released image ($record is absent): building it" \
    "from the Dockerfile"
fi

mkdir -p "$dir"
if [[ "${SIGNER_DOCKER_CONFIG:-}" == copy ]]; then
  config="${DOCKER_CONFIG:-$HOME/.docker}/config.json"
  rm -rf "$dir/docker-config"
  (umask 077 && mkdir "$dir/docker-config")
  if [[ -f "$config" ]]; then
    (umask 077 && cp "$config" "$dir/docker-config/config.json")
    echo "signer $command: registry credentials from Docker's config ($config), if it has" \
      "the registry"
  fi
fi
cat >"$dir/action.yml" <<EOF
# Written by $root/docker-action.sh for one step; removed after it.
name: signer $command (container)
description: The container of the signer $command action.
runs:
  using: docker
  image: $runs_image
  args: [$command]
EOF
