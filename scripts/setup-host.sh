#!/usr/bin/env bash
# Idempotent host set-up for `make run` and `make test`: the Debian packages
# sfmesh needs, and virtlogd/libvirtd started when not running (there is no
# systemd here). Safe to run again; does nothing when all is in place.
# `--with-browser` (make test) adds headless Chromium for the EventSource and
# browser console tests, driven over the DevTools protocol on a pipe
# (devmesh/chromium.py: no chromedriver). novnc: the gateway serves its
# library (/usr/share/novnc) to the browser console's page.
# postgresql: the eventlog's server-database store; tests and benchmarks run
# throwaway clusters of their own (devmesh/postgres.py), never the system one.
set -euo pipefail

packages=(etcd-server libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
          libvirt-dev qemu-system-x86 qemu-utils pkg-config genisoimage ovmf
          syslinux syslinux-common mtools dosfstools fdisk cpio dnsmasq-base iproute2
          nftables procps iputils-ping postgresql novnc)
[ "${1:-}" = "--with-browser" ] && packages+=(chromium)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# libvirtd without systemd: its users, groups and folders must exist first.
getent group kvm >/dev/null || "${sudo_cmd[@]}" groupadd -r kvm
getent group libvirt-qemu >/dev/null || "${sudo_cmd[@]}" groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || "${sudo_cmd[@]}" useradd -r -g libvirt-qemu -G kvm \
  -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
"${sudo_cmd[@]}" mkdir -p /var/log/libvirt /var/run/libvirt
# Without udev nothing gives /dev/kvm its usual group; libvirtd then finds it
# unusable on every call and re-probes qemu each time (seconds per call).
if [ -c /dev/kvm ]; then
  "${sudo_cmd[@]}" chgrp kvm /dev/kvm
  "${sudo_cmd[@]}" chmod 0660 /dev/kvm
fi

pgrep -x virtlogd >/dev/null || "${sudo_cmd[@]}" virtlogd -d
if ! pgrep -x libvirtd >/dev/null; then
  "${sudo_cmd[@]}" libvirtd -d
fi
for _ in $(seq 50); do
  [ -S /var/run/libvirt/libvirt-sock ] && exit 0
  sleep 0.1
done
echo "setup-host: libvirtd did not open /var/run/libvirt/libvirt-sock" >&2
exit 1
