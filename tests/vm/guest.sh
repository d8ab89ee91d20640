# Runs inside the VM's chroot (see init): prepares the guest for LVM and
# device-mapper without udev, then runs the job's command.
. /vmjob/env
export DM_DISABLE_UDEV=1
modprobe -d "$CBTD_VM_KROOT" -S "$CBTD_VM_KVER" -a crc32c_generic dm-mod \
  dm-snapshot dm-thin-pool dm-era dm-flakey dm-delay dm-log-writes loop \
  ext4 xfs || echo "guest.sh: some modules failed to load" >&2
# lvm2 without udev (nodes are created by libdevmapper itself) and without
# dmeventd or lvmpolld, which do not run here.
mkdir -p /run/lvm /run/lock/lvm /etc/lvm
cat > /etc/lvm/lvm.conf <<'CONF'
devices {
  obtain_device_list_from_udev = 0
  external_device_info_source = "none"
  use_devicesfile = 0
}
activation {
  udev_sync = 0
  udev_rules = 0
  monitoring = 0
}
global {
  use_lvmpolld = 0
}
CONF
. /vmjob/cmd
