# A Docker engine of our own for the action tests (tests/action), and the local base image.
# Sourced by scripts/test (set -euo pipefail); also runnable on its own: `source` it, or
# `bash scripts/prereqs/30-docker.sh` then `export DOCKER_HOST=unix:///var/lib/signer-docker/docker.sock`.
#
# - installs docker.io and mmdebstrap from Debian if missing;
# - starts dockerd with its own data/exec roots, pidfile and socket, no iptables and no bridge
#   (containers use --network host: the tests' service and fake issuer listen on loopback);
# - builds the local base image once: Debian bookworm minbase + python3 + venv, the machine's
#   CA certificates (this machine reaches PyPI through a TLS-intercepting egress proxy), so
#   that `docker build --build-arg BASE_IMAGE=signer-test-base:bookworm` needs no registry pull;
# - exports DOCKER_HOST and SIGNER_TEST_BASE_IMAGE. Idempotent; fast when already running.
# Set SIGNER_SKIP_DOCKER=1 to skip all of it (the docker tests then skip with a reason).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test

signer_docker_prereq() {
  local root=/var/lib/signer-docker
  local sock="$root/docker.sock" base="signer-test-base:bookworm"
  export DOCKER_HOST="unix://$sock"
  export SIGNER_TEST_BASE_IMAGE="$base"
  if [[ "${SIGNER_SKIP_DOCKER:-}" == 1 ]]; then
    echo "== docker: skipped (SIGNER_SKIP_DOCKER=1)"
    return 0
  fi
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  # Debian's archive key, to bootstrap bookworm (Ubuntu's mmdebstrap does not pull it in).
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
  "$ROOT/scripts/apt-install" "${need[@]}"
  mkdir -p "$root"
  if ! docker version >/dev/null 2>&1; then
    local pid
    pid="$(cat "$root/dockerd.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$root/dockerd.pid" "$sock"
    fi
    echo "== docker: starting dockerd ($sock)"
    # Its own containerd namespaces: on a machine whose system Docker runs (installing
    # docker.io starts it under systemd) both daemons may share the system containerd.
    setsid nohup dockerd --iptables=false --ip6tables=false --bridge=none \
      --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
      --containerd-namespace signer-test --containerd-plugins-namespace signer-test-plugins \
      --host "unix://$sock" >>"$root/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 60); do
      docker version >/dev/null 2>&1 && break
      sleep 0.5
    done
    if ! docker version >/dev/null 2>&1; then
      echo "dockerd did not start; last lines of $root/dockerd.log:" >&2
      tail -20 "$root/dockerd.log" >&2
      return 1
    fi
  fi
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "== docker: building the local base image $base (mmdebstrap, about a minute)"
    # The host's extra CA certificates go in, and pip is told to use the system bundle.
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
      --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
      --customize-hook='chroot "$1" sh -c "rm -rf /var/cache/apt/* /var/lib/apt/lists/*"' \
      bookworm - \
      | docker import --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
          --change 'CMD ["python3"]' - "$base" >/dev/null
  fi
}

signer_docker_prereq
