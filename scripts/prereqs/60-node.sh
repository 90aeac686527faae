# sigstore-js (@sigstore/verify, pinned by tests/interop/js/package-lock.json) for the
# interoperability tests, run by the machine's Node.js.
command -v node >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
if [[ ! -d "$ROOT/tests/interop/js/node_modules/@sigstore/verify" ]]; then
  (cd "$ROOT/tests/interop/js" && npm ci --no-audit --no-fund --loglevel=error)
fi
