# Debian's chromium for the browser tests (Playwright drives it through executable_path;
# Playwright's own browser download is never used).
if ! command -v chromium >/dev/null; then
  # Another apt run may hold the lock for a while (other prerequisites, unattended upgrades).
  apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
fi
export SIGNER_TEST_CHROMIUM="${SIGNER_TEST_CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
# Playwright must not look for, or fetch, a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
