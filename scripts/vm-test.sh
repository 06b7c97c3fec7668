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
#   BIN_DIR     directory with prebuilt step binaries (e.g. target/x86_64-unknown-linux-gnu/release);
#               when unset, this script runs `cargo build --release --workspace`
#   VM_TIMEOUT  seconds before a hung VM is killed (default 1800: under software emulation on a busy 2-core machine run-all alone has taken over 600 s)
#   VM_ACCEL    qemu accelerator (default tcg: software emulation, which is
#               what works everywhere; `kvm` is faster where KVM is usable)
#   CI          passed on into the VM, so run-all.sh sees the same value
#   VM_SCRIPT   a script of the workspace to run instead of scripts/run-all.sh
#               (a path relative to the workspace), to try an exercise on v2
#   VM_STEPS    the steps run-all.sh checks in the VM (default: all), e.g. `10`
#               (passed to VM_SCRIPT as its arguments)
#   VM_PEERS    1 to put the other runtimes and what scripts/bench.sh needs
#               into the VM: crun, runc, bwrap, bash, python3 (without its
#               tests and GUI modules), GNU time and flock, with their shared
#               libraries (about 60 MB more disk). Default: 1 when VM_SCRIPT
#               is scripts/bench.sh, else 0. crun is the reason: it refuses a
#               cgroup v1 hybrid host, so it can only be measured here; when
#               the host has no crun, its Debian package is fetched
#               (`apt-get download`) and unpacked, not installed
#   VM_ENV      assignments exported to the script in the VM, as a shell
#               would read them: `ROUNDS=20 PARTS="start rss"` for bench.sh
#   BASE_BIN_DIR  other prebuilt binaries (main's, say) copied into the VM as
#               /workspace/base-bin and passed on as BASE_BIN_DIR: bench.sh
#               then times them interleaved with BIN_DIR's
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
# linux-image-amd64, busybox-static, e2fsprogs, cpio, kmod; with VM_PEERS=1
# also runc, bubblewrap, time, python3-minimal), with apt.

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${VM_TIMEOUT:-1800}
accel=${VM_ACCEL:-tcg}

say() { echo "vm-test: $*" >&2; }
die() { say "$*"; exit 1; }

script=${VM_SCRIPT:-scripts/run-all.sh}
[ -f "$repo/$script" ] || die "$repo/$script not found"
# bench.sh's state goes to /var/tmp on the ext4 disk: /tmp is a tmpfs, which
# has no user.* xattrs for an overlay in a user namespace before Linux 6.6.
case "$script" in
*/bench.sh) peers=${VM_PEERS:-1} vm_tmpdir=/var/tmp ;;
*) peers=${VM_PEERS:-0} vm_tmpdir=/tmp ;;
esac
# The script runs under the interpreter its #! line names (bench.sh is bash).
interpreter=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$repo/$script")
interpreter=${interpreter:-/bin/sh}

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
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
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

# install_program PATH [DEST]: a host program at DEST (default: the same
# path) in the VM, with the shared libraries `ldd` names; a library the host
# lacks is named, loudly: that program will not start in the VM.
install_program() {
    dest=$root${2:-$1}
    mkdir -p "$(dirname "$dest")"
    # Not through a busybox applet's symlink (bin/bash, usr/bin/time).
    rm -f "$dest"
    cp -L "$1" "$dest"
    ldd "$1" 2>/dev/null | grep 'not found' | sed "s|^|vm-test: WARNING: $1 needs |" >&2 || true
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

if [ -n "${BASE_BIN_DIR:-}" ]; then
    BASE_BIN_DIR=$(cd "$BASE_BIN_DIR" && pwd)
    mkdir -p "$root/workspace/base-bin"
    for b in $(find "$BASE_BIN_DIR" -maxdepth 1 -type f -perm -u+x -name 'step*' | sort); do
        install_program "$b" "/workspace/base-bin/$(basename "$b")"
    done
fi

if [ "$peers" = 1 ]; then
    say "putting crun, runc, bwrap, bash, python3 and GNU time into the VM"
    need_pkg runc
    need_pkg bubblewrap
    need_pkg time
    need_pkg python3-minimal
    crun=$(command -v crun || true)
    if [ -z "$crun" ]; then
        # Not installed here (it would not run on a v1 host anyway): the
        # package's files only, and libyajl2, the one library it needs that a
        # Debian host may not have.
        mkdir -p "$tmp/debs"
        (cd "$tmp/debs" && apt-get download crun libyajl2) >&2 || die "apt-get download crun libyajl2 failed"
        for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$tmp/debs/x"; done
        crun=$tmp/debs/x/usr/bin/crun
        mkdir -p "$root/usr/lib/x86_64-linux-gnu"
        cp -a "$tmp"/debs/x/usr/lib/x86_64-linux-gnu/libyajl.so* "$root/usr/lib/x86_64-linux-gnu/"
    fi
    LD_LIBRARY_PATH=$tmp/debs/x/usr/lib/x86_64-linux-gnu install_program "$crun" /usr/bin/crun
    install_program "$(command -v runc)" /usr/sbin/runc
    install_program /usr/bin/bwrap
    install_program /usr/bin/time
    install_program "$(command -v flock)" /usr/bin/flock
    install_program /bin/bash /bin/bash
    py=$(readlink -f /usr/bin/python3)
    install_program "$py" /usr/bin/python3
    pylib=/usr/lib/$(basename "$py")
    tar -C / --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
        --exclude=ensurepip --exclude=lib2to3 --exclude=site-packages --exclude=dist-packages \
        --exclude='config-*' -cf - "${pylib#/}" | tar -C "$root" -xf -
    for so in "$pylib"/lib-dynload/*.so; do install_program "$so"; done
fi

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
interpreter='$interpreter'
export TMPDIR='$vm_tmpdir'
${VM_ENV:+export $VM_ENV}
$([ -n "${BASE_BIN_DIR:-}" ] && echo "export BASE_BIN_DIR=/workspace/base-bin")
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
    mkdir -p /var/tmp && chmod 1777 /var/tmp
    exec env BIN_DIR=/workspace/target/release \
        STATE_DIR=/var/lib/docker-from-scratch "$interpreter" "$script" $VM_STEPS
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
