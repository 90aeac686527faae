# Debian packages the tests call: openssl (independent X.509 / RFC 3161 checks), curl, git
# (act reads the example workflows from a repository).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
need=()
for tool in openssl:openssl curl:curl git:git; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
"$ROOT/scripts/apt-install" "${need[@]}"
