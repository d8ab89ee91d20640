# Helpers for VM test cases: `. "$CBTD_SRC/tests/vm/lib.sh"`.
set -Eeuo pipefail
# Any failing command ends the test and names itself.
trap 'echo "FAIL: ${BASH_SOURCE[0]}:${LINENO}: \"${BASH_COMMAND}\" exited $? (seed ${CBTD_VM_SEED:-?})" >&2' ERR

log() { echo "[$(date +%H:%M:%S)] $*"; }

fail() {
  echo "FAIL: $* (seed ${CBTD_VM_SEED:-?})" >&2
  exit 1
}

assert_eq() {
  [ "$1" = "$2" ] || fail "${3:-values differ}: expected '$1', got '$2'"
}

# assert_contains HAYSTACK NEEDLE MSG
assert_contains() {
  case "$1" in
    *"$2"*) ;;
    *) fail "${3:-missing text}: '$2' not in: $1" ;;
  esac
}

# make_vg VG DEV...: a fresh volume group on the given disks.
make_vg() {
  local vg=$1
  shift
  pvcreate -q -y "$@" >/dev/null
  vgcreate -q "$vg" "$@" >/dev/null
}

# Deterministic pseudo-random bytes: rand_bytes SEED BYTES > file
rand_bytes() {
  head -c "$2" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2 -iter 1 2>/dev/null
}

# sha256 of the first BYTES of a file or device: hash_of PATH [BYTES]
hash_of() {
  if [ $# -ge 2 ]; then
    head -c "$2" "$1" | sha256sum | cut -d' ' -f1
  else
    sha256sum "$1" | cut -d' ' -f1
  fi
}
