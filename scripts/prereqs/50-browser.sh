# Debian's chromium for the browser tests (Playwright drives it through executable_path;
# Playwright's own browser download is never used).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
if ! command -v chromium >/dev/null; then
  "$ROOT/scripts/apt-install" chromium
fi
export SIGNER_TEST_CHROMIUM="${SIGNER_TEST_CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
# Playwright must not look for, or fetch, a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
