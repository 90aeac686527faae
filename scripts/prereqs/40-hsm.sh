# SoftHSM2 (a PKCS#11 token in files) and OpenSC's pkcs11-tool for the token-key tests
# (tests/hsm) and SIGNER_TEST_KEYS=pkcs11: the module is /usr/lib/softhsm/libsofthsm2.so.
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"  # set by scripts/test
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
"$ROOT/scripts/apt-install" "${need[@]}"
