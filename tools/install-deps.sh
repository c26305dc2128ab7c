#!/bin/sh
# Install the Debian packages blimp needs, or say exactly how to.
#
# Called by the Makefile before anything that needs them. Checks with dpkg
# (fast, offline); installs with apt-get when run as root; otherwise prints the
# one command that would install what is missing, and fails.
set -eu

PACKAGES="gcc libc6-dev make binutils qemu-system-x86 ovmf gnu-efi newlib-source xz-utils \
python3 python3-pytest python3-matplotlib libcmocka-dev clang libclang-rt-14-dev \
mtools dosfstools libvirt-daemon-system libvirt-clients python3-libvirt"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "blimp needs these Debian packages:$missing" >&2
	echo "Install them with:  sudo apt-get update && sudo $cmd" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; a failed update is worth retrying once.
apt-get update -q || { sleep 5; apt-get update -q; }
$cmd
