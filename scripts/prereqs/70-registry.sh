# An OCI registry and an independent client for the registry tests (tests/registry):
# Debian's docker-registry (the distribution registry 2.8, started by the tests on loopback),
# skopeo (reads what signer pushed, not through signer's code) and apache2-utils (htpasswd,
# the registry's bcrypt user file).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
need=()
for tool in docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
"$ROOT/scripts/apt-install" "${need[@]}"
