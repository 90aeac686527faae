# Debian packages the tests call: openssl (independent X.509 / RFC 3161 checks), curl.
need=()
for tool in openssl:openssl curl:curl; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
