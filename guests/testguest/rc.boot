#!/bin/sh
# busybox init's ::sysinit action: bring the test guest up and print the
# marker lines the tests grep for on the serial console, in this order:
#   TESTGUEST BOOT         power button armed (acpid holds its input devices)
#   TESTGUEST LEASE/NOLEASE  one per NIC, from /etc/udhcpc.script; later
#                          also one per NIC hot-plugged after READY
#   TESTGUEST CONFIGDRIVE  what the OpenStack config drive said, or "none"
#   TESTGUEST READY        every NIC settled, config drive read
#   TESTGUEST USERDATA     start, then exit=<status>: a user_data script ran
exec >/dev/console 2>&1

# Seconds since the kernel started, as "t=" on every marker line.
uptime_s() {
    read -r up _ </proc/uptime
    echo "$up"
}

# poll TRIES INTERVAL COMMAND...: run COMMAND until it succeeds, at most
# TRIES times, sleeping INTERVAL seconds between tries. Fails when it never
# succeeded.
poll() {
    tries=$1
    interval=$2
    shift 2
    while :; do
        "$@" && return 0
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep "$interval"
    done
}

# True when acpid has opened an input device (so a power-button press from
# now on is seen). busybox acpid opens /dev/input/event* once, at start.
acpid_armed() {
    pid=$(pidof acpid) || return 1
    for fd in /proc/"$pid"/fd/*; do
        case $(readlink "$fd") in
            /dev/input/*) return 0 ;;
        esac
    done
    return 1
}

# 1. Names and loopback.
hostname testguest
ip link set lo up

# 2. ACPI power button: button.ko makes it an input device, evdev.ko gives it
#    a /dev/input/event* node; only then can acpid open it. acpid runs
#    /etc/acpi/PWRF/00000080 on a press and logs to the console.
modprobe -a button evdev
acpid -c /etc/acpi -l /dev/console
# 20 ms steps, 5 s at most; boot goes on regardless (with a warning).
poll 250 0.02 acpid_armed || echo "testguest: acpid holds no input device"

# 3. Only now announce the boot: "BOOT seen" implies "shutdown will work".
#    boot_id is new on every boot, so a reboot is visible.
echo "TESTGUEST BOOT kernel=$(uname -r)" \
    "boot_id=$(cat /proc/sys/kernel/random/boot_id) t=$(uptime_s)"

# 4. NIC and disk drivers. Order matters: ethN follows driver load order.
modprobe -a virtio_pci virtio_net e1000 e1000e 8139cp \
    virtio_blk virtio_scsi ata_piix ahci sd_mod sr_mod isofs

# 5. DHCP on every NIC, in parallel. udhcpc forks into the background once
#    it holds a lease (or after 10 unanswered discovers, with -b), so
#    waiting for these pids waits until every NIC is settled; udhcpc goes
#    on renewing afterwards.
dhcp_nic() {
    ip link set "$1" up
    udhcpc -i "$1" -s /etc/udhcpc.script -t 10 -T 1 -A 5 -b &
}
dhcp_pids=""
dhcp_ifaces=" lo "
for path in /sys/class/net/*; do
    ifc=${path##*/}
    [ "$ifc" = lo ] && continue
    [ -e "$path" ] || continue
    dhcp_nic "$ifc"
    dhcp_pids="$dhcp_pids $!"
    dhcp_ifaces="$dhcp_ifaces$ifc "
done

# 6. OpenStack config drive: an ISO9660 volume labelled config-2 (busybox
#    has no blkid; findfs reads ISO labels). The kernel finishes a module's
#    (asynchronous) device probing before its modprobe returns, so a drive
#    that is attached already has its /dev node here: in tests findfs found
#    it on the first try, IDE cdrom or not. The retries (6 tries, 50 ms
#    apart, ~0.5 s in all under TCG) are only a margin; they are what a boot
#    without a config drive pays (the reference design waited 2 s).
find_config_drive() {
    config_dev=$(findfs LABEL=config-2 2>/dev/null)
}
config_dev=""
poll 6 0.05 find_config_drive || config_dev=""

if [ -z "$config_dev" ]; then
    echo "TESTGUEST CONFIGDRIVE none"
elif mount -t iso9660 -o ro "$config_dev" /mnt/config; then
    latest=/mnt/config/openstack/latest
    # meta_data.json is one line of JSON: pull two string values out of it.
    uuid=$(sed -n 's/.*"uuid" *: *"\([^"]*\)".*/\1/p' "$latest/meta_data.json")
    name=$(sed -n 's/.*"hostname" *: *"\([^"]*\)".*/\1/p' "$latest/meta_data.json")
    user_data_sha256=none
    if [ -f "$latest/user_data" ]; then
        user_data_sha256=$(sha256sum "$latest/user_data" | cut -d' ' -f1)
    fi
    [ -n "$name" ] && hostname "$name"
    echo "TESTGUEST CONFIGDRIVE dev=$config_dev uuid=$uuid hostname=$name" \
        "user_data_sha256=$user_data_sha256 t=$(uptime_s)"
else
    echo "TESTGUEST CONFIGDRIVE unreadable dev=$config_dev"
fi

# 7. Every NIC settled (with no NIC there is nothing to wait for).
if [ -n "$dhcp_pids" ]; then
    # shellcheck disable=SC2086  # a list of pids, split on purpose
    wait $dhcp_pids
fi
echo "TESTGUEST READY t=$(uptime_s)"

# 8. A user_data that is a script ("#!" first) runs now, in the background
#    (init carries on and still obeys the power button), its output on the
#    console between the two USERDATA lines.
user_script=/mnt/config/openstack/latest/user_data
if [ -n "$config_dev" ] && [ "$(head -c 2 "$user_script" 2>/dev/null)" = "#!" ]; then
    cp "$user_script" /run/user-data
    chmod 0755 /run/user-data
    echo "TESTGUEST USERDATA start t=$(uptime_s)"
    (
        /run/user-data
        echo "TESTGUEST USERDATA exit=$? t=$(uptime_s)"
    ) &
fi

# 9. NICs plugged in later (hot-plug): twice a second, a NIC that step 5
#    did not start DHCP on is brought up and leased the same way, so its
#    lease prints the same LEASE line. Silent while nothing new appears.
(
    while :; do
        sleep 0.5
        for path in /sys/class/net/*; do
            ifc=${path##*/}
            [ -e "$path" ] || continue
            case $dhcp_ifaces in
                *" $ifc "*) continue ;;
            esac
            dhcp_ifaces="$dhcp_ifaces$ifc "
            dhcp_nic "$ifc"
        done
    done
) &
