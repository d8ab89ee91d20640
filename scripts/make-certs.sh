#!/usr/bin/env bash
# Creates what cbt-receiver's mutual TLS needs, with OpenSSL, in one command:
# a CA, a server certificate and one client certificate per host (the
# certificate's CN is the host's namespace in the vault), plus an admin
# client that may read every host's versions. See docs/transport.md.
#
#   scripts/make-certs.sh DIR [--server-name NAME]... [--host NAME]...
#                             [--admin NAME] [--days N]
#
#   DIR/ca.crt ca.key            the CA (keep ca.key offline)
#   DIR/server.crt server.key    for cbt-receiver serve --tls-cert/--tls-key
#   DIR/<host>.crt <host>.key    for cbtctl send --tls-cert/--tls-key
# The server certificate names localhost, 127.0.0.1, ::1, this machine's
# hostname and every --server-name. An existing CA in DIR is reused, so the
# script can be run again to add hosts. Keys are EC P-256, mode 0600.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
dir=$1; shift
server_names=()
hosts=()
admin=admin
days=825
while [ $# -gt 0 ]; do
  case "$1" in
    --server-name) server_names+=("$2"); shift 2 ;;
    --host) hosts+=("$2"); shift 2 ;;
    --admin) admin=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "make-certs.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
valid_name='^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$'
for h in "${hosts[@]}" "$admin"; do
  if ! [[ $h =~ $valid_name ]]; then
    echo "make-certs.sh: '$h' is not a valid host name for the vault" >&2
    exit 2
  fi
done

mkdir -p "$dir"
umask 077
cd "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
             -out "$1" 2>/dev/null; }

if [ ! -f ca.key ]; then
  newkey ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=cbtd CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
  echo "created CA: $dir/ca.crt"
fi

# sign NAME EXTFILE: NAME.key + NAME.csr -> NAME.crt
sign() {
  local name=$1 ext=$2
  [ -f "$name.key" ] || newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -sha256 -days "$days" -extfile "$ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
  chmod 644 "$name.crt"
}

ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
san="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$(hostname)"
for n in "${server_names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
done
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" >"$ext"
sign server "$ext"
echo "created server certificate: $dir/server.crt ($san)"

printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
for h in "${hosts[@]}" "$admin"; do
  sign "$h" "$ext"
  echo "created client certificate: $dir/$h.crt (identity '$h')"
done
chmod 644 ca.crt
