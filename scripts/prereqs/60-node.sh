# sigstore-js (@sigstore/verify, pinned by tests/interop/js/package-lock.json) for the
# interoperability tests, run by the machine's Node.js.
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
# Debian's nodejs does not depend on npm: each is checked.
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
"$ROOT/scripts/apt-install" "${need[@]}"
# Installed again when the lock file changes (a stamp of its hash, as scripts/bootstrap does).
js_stamp="$ROOT/tests/interop/js/node_modules/.installed-$(sha256sum \
  "$ROOT/tests/interop/js/package-lock.json" | cut -c1-16)"
if [[ ! -f "$js_stamp" ]]; then
  (cd "$ROOT/tests/interop/js" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$js_stamp"
fi
