//! A device allowlist for cgroup v2, which has no `devices.allow` file: an
//! eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE that the kernel runs on
//! every mknod(2) and open(2) of a device node by a process in the cgroup,
//! and that answers 1 (allow) or 0 (EPERM). This is how runc does it (its
//! `devicefilter` package, after crun's `ebpf.c`): a few instructions per
//! rule, assembled by hand, loaded with bpf(BPF_PROG_LOAD) and attached to
//! the cgroup's directory with bpf(BPF_PROG_ATTACH). Thin functions that
//! return `nix::Result`, so that a step can call them through `sys!`.
//!
//! The program, for the rules `c 1:3 rwm` and `c *:* m`:
//!
//! ```text
//!     r2 = ctx->access_type & 0xffff   kind: 1 block, 2 char
//!     r3 = ctx->access_type >> 16      access: 1 mknod, 2 read, 4 write
//!     r4 = ctx->major
//!     r5 = ctx->minor
//!     if r2 != 2 goto rule2            rule 1: c 1:3 rwm
//!     if r4 != 1 goto rule2
//!     if r5 != 3 goto rule2
//!     r0 = 1; exit
//! rule2:
//!     if r2 != 2 goto end              rule 2: c *:* m
//!     r1 = r3; r1 &= 1
//!     if r1 != r3 goto end             asked for more than mknod
//!     r0 = 1; exit
//! end:
//!     r0 = 0; exit                     anything else: EPERM
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cgroups_rs::fs::devices::{DevicePermissions, DeviceType};
use nix::errno::Errno;

use crate::devices::Rule;

/// `struct bpf_insn` from <linux/bpf.h>: opcode, two 4-bit registers,
/// a 16-bit jump offset and a 32-bit immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs attached above (systemd's, say) still run, and all must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;

// Opcodes: class | operation | source (K: the immediate, X: a register).
const LDX_W_MEM: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

// `struct bpf_cgroup_dev_ctx` values.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    // The two registers share a byte: dst in the low nibble on a
    // little-endian machine, in the high one on a big-endian one.
    let regs = if cfg!(target_endian = "little") { dst | (src << 4) } else { (dst << 4) | src };
    Insn { code, regs, off, imm }
}

/// The instructions of a program that allows what `rules` allow and
/// refuses every other device access.
pub fn device_filter(rules: &[Rule]) -> Vec<Insn> {
    let mut program = vec![
        insn(LDX_W_MEM, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W_MEM, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_W_MEM, 4, 1, 4, 0),
        insn(LDX_W_MEM, 5, 1, 8, 0),
    ];
    for rule in rules {
        // Each test jumps to the next rule when it fails: past the end of
        // this block, which is not known until the block is complete.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match rule.kind {
            DeviceType::Char => block.push((insn(JMP_JNE_K, 2, 0, 0, DEV_CHAR), true)),
            DeviceType::Block => block.push((insn(JMP_JNE_K, 2, 0, 0, DEV_BLOCK), true)),
            DeviceType::All => {}
        }
        let access = rule.access.iter().fold(0, |bits, permission| {
            bits | match permission {
                DevicePermissions::MkNod => ACC_MKNOD,
                DevicePermissions::Read => ACC_READ,
                DevicePermissions::Write => ACC_WRITE,
            }
        });
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            block.push((insn(ALU32_MOV_X, 1, 3, 0, 0), false));
            block.push((insn(ALU32_AND_K, 1, 0, 0, access), false));
            block.push((insn(JMP_JNE_X, 1, 3, 0, 0), true));
        }
        if rule.major >= 0 {
            block.push((insn(JMP_JNE_K, 4, 0, 0, rule.major as i32), true));
        }
        if rule.minor >= 0 {
            block.push((insn(JMP_JNE_K, 5, 0, 0, rule.minor as i32), true));
        }
        block.push((insn(ALU32_MOV_K, 0, 0, 0, 1), false));
        block.push((insn(JMP_EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (index, (mut instruction, jumps_past)) in block.into_iter().enumerate() {
            if jumps_past {
                instruction.off = (len - index - 1) as i16;
            }
            program.push(instruction);
        }
    }
    program.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    program.push(insn(JMP_EXIT, 0, 0, 0, 0));
    program
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// bpf(BPF_PROG_LOAD, {BPF_PROG_TYPE_CGROUP_DEVICE, device_filter(rules)}):
/// the kernel's verifier checks the program and returns it as a descriptor.
pub fn load_device_filter(rules: &[Rule]) -> nix::Result<OwnedFd> {
    let program = device_filter(rules);
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"dfs_device");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: c"MIT".as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix whose size is passed with
    // it; the instructions and the license it points to outlive the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const ProgLoadAttr, std::mem::size_of::<ProgLoadAttr>())
    };
    let fd = Errno::result(fd)?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// bpf(BPF_PROG_ATTACH, {cgroup, program, BPF_CGROUP_DEVICE,
/// BPF_F_ALLOW_MULTI}): from now on the program decides for every process
/// in the cgroup (an open directory of cgroup v2) and below it. The cgroup
/// keeps the program until it is removed: the descriptor may be closed.
pub fn attach_device_filter(program: &OwnedFd, cgroup: &impl AsRawFd) -> nix::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix whose size is passed with it.
    let res = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    Errno::result(res).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program of the module's documentation, instruction by instruction.
    #[test]
    fn two_rules_assemble_as_documented() {
        let rules = [
            Rule { kind: DeviceType::Char, major: 1, minor: 3, access: crate::devices::ALL.access },
            Rule { kind: DeviceType::Char, major: -1, minor: -1, access: &[DevicePermissions::MkNod] },
        ];
        let program = device_filter(&rules);
        let shown: Vec<(u8, u8, i16, i32)> = program.iter().map(|i| (i.code, i.regs, i.off, i.imm)).collect();
        assert_eq!(
            shown,
            [
                (0x61, 0x12, 0, 0),
                (0x54, 0x02, 0, 0xffff),
                (0x61, 0x13, 0, 0),
                (0x74, 0x03, 0, 16),
                (0x61, 0x14, 4, 0),
                (0x61, 0x15, 8, 0),
                // c 1:3 rwm
                (0x55, 0x02, 4, 2),
                (0x55, 0x04, 3, 1),
                (0x55, 0x05, 2, 3),
                (0xb4, 0x00, 0, 1),
                (0x95, 0x00, 0, 0),
                // c *:* m
                (0x55, 0x02, 5, 2),
                (0xbc, 0x31, 0, 0),
                (0x54, 0x01, 0, 1),
                (0x5d, 0x31, 2, 0),
                (0xb4, 0x00, 0, 1),
                (0x95, 0x00, 0, 0),
                // nothing matched
                (0xb4, 0x00, 0, 0),
                (0x95, 0x00, 0, 0),
            ]
        );
    }

    /// The kernel's verifier accepts the real allowlist (needs root, skipped
    /// without; the steps' tests prove what it allows).
    #[test]
    fn the_verifier_accepts_the_allowlist() {
        if !crate::testing::require_root("the_verifier_accepts_the_allowlist") {
            return;
        }
        load_device_filter(crate::devices::ALLOWED).expect("BPF_PROG_LOAD of the device filter failed");
    }

    /// On whichever cgroup v2 tree this host has (all of /sys/fs/cgroup, or
    /// /sys/fs/cgroup/unified next to v1 hierarchies: the kernel runs the
    /// programs of a process's v2 cgroup either way), a process in a cgroup
    /// with the allowlist attached may use /dev/null and create any node, but
    /// not open /dev/kmsg (1:11), and may not read a disk (block 7:0).
    #[test]
    fn the_device_filter_refuses_what_it_does_not_name() {
        use std::os::unix::process::CommandExt;
        if !crate::testing::require_root("the_device_filter_refuses_what_it_does_not_name") {
            return;
        }
        let tree = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].into_iter().map(std::path::Path::new).find(|dir| {
            nix::sys::statfs::statfs(*dir).is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        });
        let Some(tree) = tree else {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED the_device_filter_refuses_what_it_does_not_name: no cgroup v2 tree mounted\n",
            );
            return;
        };
        let parent = tree.join(crate::CGROUP_PARENT);
        let cgroup = parent.join(format!("bpf-test-{}", std::process::id()));
        // Under the runtime's lock, as a container's cgroup is made and its
        // empty parent removed, so that neither side removes the other's.
        let lock = crate::cgroup::lock_parent().unwrap();
        std::fs::create_dir_all(&cgroup).unwrap();
        drop(lock);
        let dir = std::fs::File::open(&cgroup).unwrap();
        let program = load_device_filter(crate::devices::ALLOWED).unwrap();
        attach_device_filter(&program, &dir).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        // `: > node` and `: < node` open the node and write or read nothing:
        // only the open is tested. /dev/kmsg is opened for writing, which
        // needs no CAP_SYSLOG, so only the filter can refuse it.
        let script = "echo x > /dev/null && echo null-ok; \
                      mknod kmsg c 1 11 && echo mknod-ok && (: > kmsg) 2>/dev/null || echo kmsg-refused; \
                      mknod loop b 7 0 && echo mknod-block-ok && (: < loop) 2>/dev/null || echo loop-refused";
        let procs = cgroup.join("cgroup.procs");
        let mut command = std::process::Command::new("sh");
        command.args(["-c", script]).current_dir(scratch.path());
        // SAFETY: the closure only writes a file (open, write, close), which
        // is allowed between fork and exec.
        unsafe {
            command.pre_exec(move || std::fs::write(&procs, "0"));
        }
        let output = command.output().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _lock = crate::cgroup::lock_parent().unwrap();
        let _ = std::fs::remove_dir(&cgroup);
        let _ = std::fs::remove_dir(&parent);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "null-ok\nmknod-ok\nkmsg-refused\nmknod-block-ok\nloop-refused\n",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
