#!/usr/bin/env bash
# Runs one script inside a qemu VM booted with Debian's kernel, against the
# host's own filesystem (read-only, tmpfs overlay) and fresh sparse disks.
#
#   tests/vm/run-vm.sh [--build DIR] [--disk SIZE]... [--timeout SEC]
#                      [--mem MiB] [--smp N] [--keep] [--follow]
#                      -- SCRIPT [ARGS...]
#   tests/vm/run-vm.sh [--disk SIZE]... --shell      interactive shell
#
# Inside the guest SCRIPT runs as root under bash in the current directory;
# disks are /dev/vda, /dev/vdb, ... in the order given. Its output is
# printed when the VM stops, or as it is written with --follow. Exit status: the
# script's, or 124 on timeout, 125 if the VM failed to start the script.
# Environment: CBTD_VM_CACHE, CBTD_VM_SEED (default: random, printed),
# CBTD_VM_ACCEL (default tcg; kvm hangs on some hosts).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build="$src/build"
timeout=600
mem=2048
smp=2
keep=0
shell=0
follow=0
disks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --follow) follow=1; shift ;;
    --shell) shell=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run-vm.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "$shell" = 0 ] && [ $# -eq 0 ]; then
  echo "run-vm.sh: no script given (or use --shell)" >&2
  exit 2
fi

kdir=$("$here/kernel.sh" --print 2>/dev/null || true)
if [ ! -f "$kdir/initrd.img" ] || [ ! -f "$kdir/.complete" ]; then
  "$here/kernel.sh" >&2
  kdir=$("$here/kernel.sh" --print)
fi
kver=$(cat "$kdir/kver")

job=$(mktemp -d /tmp/cbtd-vm.XXXXXX)
cleanup() { [ "$keep" = 1 ] && echo "run-vm.sh: kept $job" >&2 || rm -rf "$job"; }
trap cleanup EXIT

seed=${CBTD_VM_SEED:-$(( (RANDOM << 15) | RANDOM ))}
{
  printf 'export CBTD_SRC=%q CBTD_BUILD=%q CBTD_BIN=%q\n' "$src" "$build" "$build/bin"
  printf 'export CBTD_VM_SEED=%q CBTD_VM_KROOT=%q CBTD_VM_KVER=%q\n' "$seed" "$kdir/root" "$kver"
  printf 'export PATH=%q\n' "$build/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  printf 'cd %q\n' "$PWD"
} > "$job/env"
if [ "$shell" = 1 ]; then
  echo 'exec setsid -c bash -i </dev/ttyS0 >/dev/ttyS0 2>&1' > "$job/cmd"
else
  printf 'exec bash' > "$job/cmd"
  printf ' %q' "$@" >> "$job/cmd"
  printf ' >/vmjob/log 2>&1\n' >> "$job/cmd"
fi
cp "$here/guest.sh" "$job/guest.sh"

drive_args=()
i=0
for size in "${disks[@]}"; do
  truncate -s "$size" "$job/disk$i.img"
  drive_args+=(-drive "file=$job/disk$i.img,if=virtio,format=raw,cache=unsafe,aio=threads")
  i=$((i + 1))
done

accel=${CBTD_VM_ACCEL:-tcg}
qemu=(qemu-system-x86_64 -machine "accel=$accel" -cpu max -smp "$smp" -m "$mem"
  -no-reboot -nodefaults -display none
  -kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.img"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off cryptomgr.notests=1"
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$job,mount_tag=vmjob,security_model=none,multidevs=remap"
  "${drive_args[@]}")

if [ "$shell" = 1 ]; then
  exec "${qemu[@]}" -serial mon:stdio
fi

# --follow: print the guest's output as it is written (the job directory
# is shared over 9p), not all at the end.
follow_log() {
  local off=0 size
  while :; do
    if [ -f "$job/log" ]; then
      size=$(stat -c %s "$job/log")
      if [ "$size" -gt "$off" ]; then
        tail -c +$((off + 1)) "$job/log" | head -c $((size - off))
        off=$size
      fi
    fi
    [ -e "$job/.stopped" ] && return 0
    sleep 0.5
  done
}

echo "run-vm.sh: $* (seed $seed, disks: ${disks[*]:-none}, kernel $kver)" >&2
start=$(date +%s)
follower=
if [ "$follow" = 1 ]; then
  follow_log &
  follower=$!
fi
set +e
timeout --kill-after=10 "$timeout" "${qemu[@]}" -serial "file:$job/console.log" </dev/null
qrc=$?
set -e
if [ -n "$follower" ]; then
  touch "$job/.stopped"
  wait "$follower"
elif [ -f "$job/log" ]; then
  cat "$job/log"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "run-vm.sh: TIMEOUT after ${timeout}s (seed $seed); console tail:" >&2
  tail -n 30 "$job/console.log" >&2 || true
  exit 124
fi
rc=$(cat "$job/rc" 2>/dev/null || true)
if ! [[ "$rc" =~ ^[0-9]+$ ]]; then
  # init also prints the status on the console.
  rc=$(sed -n 's/^init: job exit status \([0-9]*\).*/\1/p' "$job/console.log" 2>/dev/null | tail -n 1)
fi
if ! [[ "$rc" =~ ^[0-9]+$ ]]; then
  echo "run-vm.sh: the VM stopped without a result (qemu exit $qrc); console tail:" >&2
  tail -n 30 "$job/console.log" >&2 || true
  exit 125
fi
echo "run-vm.sh: exit $rc after $(( $(date +%s) - start ))s (seed $seed)" >&2
[ "$rc" = 125 ] && tail -n 30 "$job/console.log" >&2
exit "$rc"
