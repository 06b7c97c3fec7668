//! The new mount API calls that nix does not wrap yet, as thin functions
//! returning `nix::Result` so that a step can call them through `sys!`:
//! open_tree(2), mount_setattr(2) (read-only, and MOUNT_ATTR_IDMAP),
//! move_mount(2), and the flags a remount must keep. Together they make a
//! detached mount of the image, read-only and idmapped (file owners seen
//! through a user namespace's uid/gid maps), which the runtime passes to the
//! container as a descriptor over a Unix socket (`send_fd`, `recv_fd`).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` from <linux/mount.h>.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn c_path(path: &Path) -> nix::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC): a
/// detached copy of the mount tree at `path`, attached nowhere yet.
pub fn open_tree_clone(path: &Path) -> nix::Result<OwnedFd> {
    let path = c_path(path)?;
    let flags = OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `path` is a valid NUL-terminated string for the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: open_tree returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// mount_setattr(tree, "", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP, userns}): owners
/// seen through `tree` are mapped with the uid/gid maps of `userns`.
pub fn mount_setattr_idmap(tree: &OwnedFd, userns: &impl AsRawFd) -> nix::Result<()> {
    let attr =
        MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    // SAFETY: the empty path is NUL-terminated; `attr` is a valid mount_attr
    // and its size is passed with it.
    let res = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(res).map(drop)
}

/// mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_RDONLY}):
/// nothing can be written through `tree`, wherever it is attached.
pub fn mount_setattr_readonly(tree: &OwnedFd) -> nix::Result<()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: as in mount_setattr_idmap.
    let res = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(res).map(drop)
}

/// Sends `fd` over the Unix socket `socket` (SCM_RIGHTS): the receiver gets
/// its own descriptor for the same open file, or here, the same detached
/// mount tree.
pub fn send_fd(socket: &impl AsRawFd, fd: &impl AsRawFd) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let rights = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(b"fd")], &rights, MsgFlags::empty(), None).map(drop)
}

/// Receives one descriptor sent with [`send_fd`]; `None` when the other end
/// closed the socket without sending one (the parent gave up on the start).
pub fn recv_fd(socket: &impl AsRawFd) -> nix::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 2];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) }));
        }
    }
    Ok(None)
}

/// The flags of the mount that holds `path` which a remount must repeat:
/// nosuid, nodev, noexec and rdonly, read with statvfs(2) (the ST_* bits
/// are the MS_* ones). A remount (MS_REMOUNT | MS_BIND) sets exactly the
/// flags it is given, and in a user namespace the kernel refuses (EPERM) one
/// that would clear a flag the host set, which it locks. runc's
/// `readonlyPath` reads them the same way.
pub fn mount_flags(path: &Path) -> nix::Result<nix::mount::MsFlags> {
    use nix::mount::MsFlags;
    let kept = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    let flags = nix::sys::statvfs::statvfs(path)?.flags();
    Ok(MsFlags::from_bits_truncate(flags.bits() as libc::c_ulong) & kept)
}

/// move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH): attaches
/// the detached tree at `target`.
pub fn move_mount(tree: &OwnedFd, target: &Path) -> nix::Result<()> {
    let target = c_path(target)?;
    // SAFETY: both paths are valid NUL-terminated strings for the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(res).map(drop)
}
