# PostgreSQL on 127.0.0.1:5432 (trust auth): start it if it is not running.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export SIGNER_TEST_POSTGRES_URL="${SIGNER_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
