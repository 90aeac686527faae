# PostgreSQL on 127.0.0.1:5432 for the integration suite (both stores run every test):
# installed from Debian if missing, started if not running, and - only if the tests' user
# cannot connect without a password - a trust line for postgres@127.0.0.1 added to the
# cluster's pg_hba.conf (a test machine's database, never a production one).
# SIGNER_TEST_POSTGRES_URL, if set, names another server and skips all of this.
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
signer_postgres_prereq() {
  if [[ -n "${SIGNER_TEST_POSTGRES_URL:-}" ]]; then
    return 0
  fi
  command -v pg_ctlcluster >/dev/null || "$ROOT/scripts/apt-install" postgresql
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)"
  if [[ -z "$version" ]]; then
    echo "PostgreSQL is installed but has no cluster (/etc/postgresql is empty): create one" \
         "with 'pg_createcluster --start <version> main', or set SIGNER_TEST_POSTGRES_URL." >&2
    return 1
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || {
    echo "PostgreSQL cluster $version/main is not answering on 127.0.0.1:5432 (its port and" \
         "state: 'pg_lsclusters'); start it there, or set SIGNER_TEST_POSTGRES_URL." >&2
    return 1
  }
  if ! psql -h 127.0.0.1 -U postgres -d postgres -w -qAtc 'select 1' >/dev/null 2>&1; then
    echo "== postgres: allowing postgres@127.0.0.1 without a password (test machine)"
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -w -qAtc 'select 1' >/dev/null || {
    echo "PostgreSQL on 127.0.0.1:5432 does not accept postgres without a password;" \
         "set SIGNER_TEST_POSTGRES_URL to a server the tests may use." >&2
    return 1
  }
  export SIGNER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:5432/postgres"
}
signer_postgres_prereq
