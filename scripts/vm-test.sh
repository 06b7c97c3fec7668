#!/bin/sh
# Run scripts/run-all.sh inside a small qemu VM whose cgroups are pure v2.
#
# Why a VM: the development and CI machines mount cgroup v1 (hybrid), so the
# cgroup v2 code path of steps 08 and 09 would never run there. A VM booted
# with `cgroup_no_v1=all` and only cgroup2 mounted at /sys/fs/cgroup is what a
# current systemd distribution (Ubuntu 22.04+, Debian 12, Fedora) looks like.
#
# Usage:   sh scripts/vm-test.sh
# Output:  the lines run-all.sh printed inside the VM, ending with
#          `N passed, M failed`; the exit status is run-all.sh's.
#
# Environment:
#   BIN_DIR     directory with prebuilt step binaries (e.g. target/release);
#               when unset, this script runs `cargo build --release --workspace`
#   VM_TIMEOUT  seconds before a hung VM is killed (default 1800: under software emulation on a busy 2-core machine run-all alone has taken over 600 s)
#   VM_ACCEL    qemu accelerator (default tcg: software emulation, which is
#               what works everywhere; `kvm` is faster where KVM is usable)
#   CI          passed on into the VM, so run-all.sh sees the same value
#   VM_SCRIPT   a script of the workspace to run instead of scripts/run-all.sh
#               (a path relative to the workspace), to try an exercise on v2
#   VM_STEPS    the steps run-all.sh checks in the VM (default: all), e.g. `10`
#               (passed to VM_SCRIPT as its arguments)
#
# How it works:
#   1. a root file system is assembled in a temp dir: static busybox as the
#      userland, the step binaries with the shared libraries `ldd` names, a
#      copy of the workspace (without target/ and .git/), and /sbin/vm-init;
#   2. it becomes an ext4 image with `mkfs.ext4 -d`, so no loop mount is
#      needed. A real disk matters: pivot_root(2) fails with EINVAL when the
#      root is the initramfs, and overlayfs inside a user namespace wants an
#      upper directory that supports user.* xattrs, which ext4 has;
#   3. a tiny initramfs loads the kernel modules the Debian kernel does not
#      have built in (virtio disk, ext4, overlay) and switches to that disk;
#   4. vm-init mounts what systemd would mount, runs run-all.sh with its
#      output on a second serial port (so kernel messages, such as the OOM
#      killer's, cannot interleave with it) and powers the VM off.
#
# Needs root only to install missing packages (qemu-system-x86,
# linux-image-amd64, busybox-static, e2fsprogs, cpio, kmod), with apt.

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${VM_TIMEOUT:-1800}
accel=${VM_ACCEL:-tcg}

say() { echo "vm-test: $*" >&2; }
die() { say "$*"; exit 1; }

script=${VM_SCRIPT:-scripts/run-all.sh}
[ -f "$repo/$script" ] || die "$repo/$script not found"

# --- 1. host packages -------------------------------------------------------

# Install Debian packages that are missing; `apt-get update` only runs when
# something is actually missing, so a provisioned machine needs no network.
apt_updated=no
need_pkg() {
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "package $1 is missing; run as root or: apt-get install $1"
    if [ "$apt_updated" = no ]; then
        say "apt-get update"
        apt-get update -qq >&2
        apt_updated=yes
    fi
    say "installing $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >&2
}

need_pkg qemu-system-x86
need_pkg busybox-static
need_pkg e2fsprogs
need_pkg cpio
need_pkg kmod

# The guest kernel: the newest /boot/vmlinuz-* whose modules are installed
# (the running kernel of a container or CI host often has none there).
find_kernel() {
    for k in $(printf '%s\n' /boot/vmlinuz-* | sort -V); do
        [ -r "$k" ] && [ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && echo "$k"
    done | tail -n 1
}
kernel=$(find_kernel)
if [ -z "$kernel" ]; then
    need_pkg linux-image-amd64
    kernel=$(find_kernel)
fi
[ -n "$kernel" ] || die "no kernel with modules found under /boot and /lib/modules"
kver=${kernel#/boot/vmlinuz-}

busybox=$(command -v busybox) || die "busybox not found on PATH"
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install busybox-static"
fi

# --- 2. the step binaries ---------------------------------------------------

if [ -z "${BIN_DIR:-}" ]; then
    command -v cargo >/dev/null || die "cargo not found; run scripts/provision.sh first"
    say "cargo build --release --workspace"
    (cd "$repo" && cargo build --release --workspace) >&2
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/release
fi
BIN_DIR=$(cd "$BIN_DIR" && pwd)
bins=$(find "$BIN_DIR" -maxdepth 1 -type f -perm -u+x | sort)
[ -n "$bins" ] || die "no executables in $BIN_DIR"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vm-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# --- 3. the root file system ------------------------------------------------

root=$tmp/root
mkdir -p "$root"
for d in bin sbin usr/bin usr/sbin dev proc sys tmp run root etc var/lib workspace/target/release; do
    mkdir -p "$root/$d"
done

# busybox is the userland: one symlink per applet, where a distribution has
# its tools (bin/sh, sbin/switch_root, usr/bin/awk, ...).
install_busybox() {
    cp "$busybox" "$1/bin/busybox"
    for applet in $("$busybox" --list-full); do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$1/$(dirname "$applet")"
        ln -sf /bin/busybox "$1/$applet"
    done
}
install_busybox "$root"

# The step binaries, and the shared libraries each one loads (none when they
# are linked statically), copied to the same paths as on the host.
for b in $bins; do
    cp "$b" "$root/workspace/target/release/"
    for lib in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done

# The workspace itself, for run-all.sh and whatever files its checks read.
tar -C "$repo" --exclude=./target --exclude=./.git -cf - . | tar -C "$root/workspace" -xf -

cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo vm-test > "$root/etc/hostname"

# PID 1 of the VM, once the ext4 disk is the root.
cat > "$root/sbin/vm-init" <<EOF
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export CI='${CI:-}'
script='$script'
export VM_STEPS='${VM_STEPS:-}'
EOF
cat >> "$root/sbin/vm-init" <<'EOF'

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# cgroup2 alone, with the options systemd uses; the kernel was booted with
# cgroup_no_v1=all, so no v1 hierarchy can be mounted next to it.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
# systemd makes every mount shared (see "Shared subtrees" in man 7
# mount_namespaces); the steps must cope with that, so test with it.
mount --make-rshared /
hostname -F /etc/hostname
ip link set lo up

# Like systemd: every available controller enabled at the root, PID 1 in
# init.scope and the test in a leaf cgroup of its own.
cg=/sys/fs/cgroup
for c in $(cat $cg/cgroup.controllers); do
    echo "+$c" > $cg/cgroup.subtree_control
done
mkdir -p $cg/init.scope $cg/system.slice/vm-test.service
echo 1 > $cg/init.scope/cgroup.procs
for c in $(cat $cg/system.slice/cgroup.controllers); do
    echo "+$c" > $cg/system.slice/cgroup.subtree_control
done

# Progress goes to the console (ttyS0), which the host shows when the VM
# fails; results go to ttyS1.
echo "vm-init: running $script"
exec 3>/dev/ttyS1
echo "VM-INFO kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)" >&3
echo "VM-INFO cgroup mounts: $(grep cgroup /proc/mounts | tr '\n' ' ')" >&3
echo "VM-INFO cgroup.controllers: $(cat $cg/cgroup.controllers)" >&3
echo "VM-INFO cgroup.subtree_control: $(cat $cg/cgroup.subtree_control)" >&3
echo "VM-TEST-BEGIN" >&3
cd /workspace
(
    echo 0 > $cg/system.slice/vm-test.service/cgroup.procs
    # The state on the ext4 disk, where the runtime keeps it by default, not
    # in run-all.sh's default temp dir: /tmp here is a tmpfs.
    exec env BIN_DIR=/workspace/target/release \
        STATE_DIR=/var/lib/docker-from-scratch sh "$script" $VM_STEPS
) </dev/null >&3 2>&1
status=$?
echo "VM-TEST-END" >&3
echo "VM-EXIT-STATUS=$status" >&3
echo "vm-init: $script exited with $status, powering off"
sync
poweroff -f
EOF
chmod 755 "$root/sbin/vm-init"

# --- 4. the initramfs -------------------------------------------------------

# Modules the Debian kernel has as .ko files, in load order. On a kernel
# where one is built in, modprobe prints "builtin" and there is nothing to do.
initrd=$tmp/initrd
mkdir -p "$initrd/bin" "$initrd/sbin" "$initrd/usr/bin" "$initrd/usr/sbin" \
    "$initrd/modules" "$initrd/dev" "$initrd/proc" "$initrd/sys" "$initrd/newroot"
install_busybox "$initrd"
: > "$initrd/modules/order"
for m in virtio_pci virtio_blk ext4 overlay; do
    modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    name=$(basename "$ko")
    # busybox insmod takes plain .ko files only (Debian 12 ships them so;
    # Ubuntu compresses them with zstd).
    case "$ko" in
    *.xz) need_pkg xz-utils; xz -dc "$ko" > "$initrd/modules/${name%.xz}"; name=${name%.xz} ;;
    *.zst) need_pkg zstd; zstd -qdc "$ko" > "$initrd/modules/${name%.zst}"; name=${name%.zst} ;;
    *.gz) gzip -dc "$ko" > "$initrd/modules/${name%.gz}"; name=${name%.gz} ;;
    *) cp "$ko" "$initrd/modules/" ;;
    esac
    echo "$name" >> "$initrd/modules/order"
done

cat > "$initrd/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do
    insmod "/modules/$m" || echo "vm-test initrd: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 /dev/vda /newroot; then
    echo "vm-test initrd: cannot mount /dev/vda"
    poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/vm-init
EOF
chmod 755 "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet) > "$tmp/initrd.img"

# --- 5. the disk image ------------------------------------------------------

# Room for the image store, the containers and their overlay upper dirs.
size_mb=$(( $(du -sm "$root" | cut -f1) + 1024 ))
truncate -s "${size_mb}M" "$tmp/root.img"
mkfs.ext4 -q -F -L vm-root -d "$root" "$tmp/root.img"

# --- 6. boot ---------------------------------------------------------------

say "booting $kernel under qemu ($accel), timeout ${timeout_s}s"
start=$(date +%s)
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel "$accel" -cpu max -smp 2 -m 2G \
    -nodefaults -no-reboot -display none -monitor none -nic none \
    -kernel "$kernel" -initrd "$tmp/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all" \
    -drive "file=$tmp/root.img,format=raw,if=virtio,cache=unsafe" \
    -serial "file:$tmp/console.log" -serial "file:$tmp/results.log" \
    </dev/null >&2
qemu_status=$?
set -e
say "VM ran for $(( $(date +%s) - start ))s"

# --- 7. report --------------------------------------------------------------

tr -d '\r' < "$tmp/results.log" > "$tmp/results.txt"
sed -n 's/^VM-INFO /vm-test: /p' "$tmp/results.txt" >&2
# The lines between the markers; after a timeout, those printed so far.
awk '/^VM-TEST-END$/ {on = 0} on {print} /^VM-TEST-BEGIN$/ {on = 1}' "$tmp/results.txt"
status=$(sed -n 's/^VM-EXIT-STATUS=\([0-9]*\)$/\1/p' "$tmp/results.txt")
if [ -z "$status" ]; then
    if [ "$qemu_status" = 124 ]; then
        say "the VM did not finish within ${timeout_s}s"
    else
        say "the VM stopped without reporting a status (qemu exit $qemu_status)"
    fi
    say "last lines of the VM console:"
    tail -n 40 "$tmp/console.log" | tr -d '\r' >&2
    exit 1
fi
exit "$status"
