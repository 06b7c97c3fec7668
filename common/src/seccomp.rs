//! Docker's default seccomp profile: which system calls a container may make
//! (seccomp(2), filter mode). The profile is data, `common/seccomp/default.profile`,
//! written from the rules of moby's profiles/seccomp. This module reads it,
//! keeps the rules that apply to the capabilities the container keeps (as
//! Docker does: `--cap-add SYS_ADMIN` allows mount(2) again), and compiles
//! them into classic BPF for the running architecture: the allowed calls
//! as a binary search ([`crate::cbpf`], a seventh of the instructions of a
//! row of comparisons and a tenth of the kernel's time to load it), the
//! calls with an errno of their own by seccompiler (rust-vmm's BPF
//! compiler, the one Firecracker uses; it also compiles step10's bundle
//! profiles). Loading the result is the step's: [`seccomp_set_mode_filter`]
//! is called in its `main.rs`.
//!
//! A filter gives a single answer for the calls it matches, so
//! a rule with another errno (clone3's ENOSYS) becomes a second, small
//! filter. The kernel runs every filter a process has and keeps the most
//! restrictive answer (an errno beats "allow", man 2 seccomp), so the main
//! filter allows clone3 and the second one answers ENOSYS.
//! seccompiler's own `apply_filter` is not used: it always sets no_new_privs,
//! which Docker leaves off unless asked.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use caps::Capability;
use nix::errno::Errno;
use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompFilter, TargetArch};

use crate::cbpf;
use crate::cbpf::Decision;
use crate::cbpf::Test;

/// The profile, built into the binary: a runtime copied on its own still has it.
pub const DEFAULT_PROFILE: &str = include_str!("../seccomp/default.profile");

/// Where the profile lives in the repository, for error messages.
const PROFILE_PATH: &str = "common/seccomp/default.profile";

/// A compiled profile: the BPF programs to load, in order.
pub struct Filter {
    programs: Vec<BpfProgram>,
    allowed: usize,
    errnos: Vec<String>,
}

impl Filter {
    /// How many calls the profile allows on this architecture, for these capabilities.
    pub fn allowed(&self) -> usize {
        self.allowed
    }

    /// The calls answered with an errno of their own: `clone3: ENOSYS`.
    pub fn errnos(&self) -> &[String] {
        &self.errnos
    }

    /// How many filters loading it adds (the `Seccomp_filters:` of /proc/PID/status).
    pub fn programs(&self) -> usize {
        self.programs.len()
    }

    /// A filter compiled elsewhere, from a profile that is not Docker's: an
    /// OCI bundle's `linux.seccomp` (step10), loaded by the same
    /// [`seccomp_set_mode_filter`]. `allowed` and `errnos` are for `--trace`.
    pub fn from_programs(programs: Vec<BpfProgram>, allowed: usize, errnos: Vec<String>) -> Filter {
        Filter { programs, allowed, errnos }
    }
}

impl fmt::Debug for Filter {
    /// One short line for `--trace` and for errors, not 1,500 instructions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<usize> = self.programs.iter().map(Vec::len).collect();
        write!(f, "{{programs={}, len={sizes:?}, allowed={}}}", sizes.len(), self.allowed)
    }
}

/// Docker's default profile for a container that keeps `keep`, compiled for
/// the running architecture. Other architectures are refused with the way out.
pub fn default_profile(keep: &HashSet<Capability>) -> Result<Filter> {
    let arch = Arch::running()?;
    build(DEFAULT_PROFILE, keep, arch).with_context(|| format!("{PROFILE_PATH} cannot be compiled"))
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, &program) for each program of
/// `filter`, in order. From then on the kernel runs them on every system
/// call this process and its children make, for good: a filter cannot be
/// removed, only more can be added (man 2 seccomp). Without no_new_privs the
/// caller needs CAP_SYS_ADMIN in its user namespace (EACCES otherwise).
pub fn seccomp_set_mode_filter(filter: &Filter) -> nix::Result<()> {
    for program in &filter.programs {
        let fprog = libc::sock_fprog {
            // seccompiler refuses a program the kernel would (BPF_MAXINSNS, 4096).
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `fprog` points to `program`'s instructions, which outlive the
        // call; the kernel copies them and writes nothing. seccompiler's
        // `sock_filter` is `#[repr(C)]` with the kernel's fields (u16, u8, u8,
        // u32), the layout of `libc::sock_filter`.
        let res = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog)
        };
        Errno::result(res)?;
    }
    Ok(())
}

/// The architectures a profile is compiled for: the native 64-bit ABI only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on, or the way out on others.
    fn running() -> Result<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            other => bail!(
                "no seccomp profile for {other}: Docker's default profile is compiled here for x86_64 and aarch64 only; run with --security-opt seccomp=unconfined"
            ),
        }
    }

    /// The call's number on this architecture; None where it has no such call.
    fn number(self, name: &str) -> Option<i64> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|call| call.id().into()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok().map(|call| call.id().into()),
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
    fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }
}

/// What a rule does to the calls it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Allow,
    Errno(Errno),
}

/// One line of the profile. Its test on one argument (`arg0:u32 < 38`,
/// `arg0 & 0x7e020000 == 0`) is a [`Test`] of the compiler's.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    line: usize,
    action: Action,
    names: Vec<String>,
    test: Option<Test>,
    /// `if CAP` (true) or `unless CAP` (false).
    capability: Option<(Capability, bool)>,
}

impl Rule {
    fn applies(&self, keep: &HashSet<Capability>) -> bool {
        self.capability.is_none_or(|(cap, wanted)| keep.contains(&cap) == wanted)
    }
}

/// The parsed profile: its default action and its rules.
#[derive(Debug)]
struct Profile {
    default: Errno,
    rules: Vec<Rule>,
}

#[cfg(test)]
impl Profile {
    /// Every call name the profile mentions.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().flat_map(|rule| rule.names.iter().map(String::as_str))
    }
}

/// Reads the profile's text; an error names the line and what is wrong with it.
fn parse(text: &str) -> Result<Profile> {
    let mut default = None;
    let mut rules = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(index, line)| (index + 1, line)) {
        let words: Vec<&str> = line.split('#').next().unwrap_or_default().split_whitespace().collect();
        match words[..] {
            [] => {}
            ["default", action] => match parse_action(action) {
                Ok(Action::Errno(errno)) if default.is_none() => default = Some(errno),
                Ok(_) if default.is_some() => bail!("line {number}: a second `default`"),
                Ok(_) => bail!("line {number}: the default must be an errno, like `default errno=EPERM`"),
                Err(err) => bail!("line {number}: {err}"),
            },
            _ => rules.push(parse_rule(number, &words).with_context(|| format!("line {number}: {line:?}"))?),
        }
    }
    let Some(default) = default else { bail!("no `default errno=…` line") };
    Ok(Profile { default, rules })
}

fn parse_action(word: &str) -> Result<Action> {
    match word {
        "allow" => Ok(Action::Allow),
        "errno=EPERM" => Ok(Action::Errno(Errno::EPERM)),
        "errno=ENOSYS" => Ok(Action::Errno(Errno::ENOSYS)),
        _ => bail!("unknown action {word:?}: use allow, errno=EPERM or errno=ENOSYS"),
    }
}

fn parse_rule(line: usize, words: &[&str]) -> Result<Rule> {
    let action = parse_action(words[0])?;
    let keyword = |word: &&str| matches!(*word, "where" | "if" | "unless");
    let names: Vec<String> = words[1..].iter().take_while(|word| !keyword(word)).map(|name| name.to_string()).collect();
    if names.is_empty() {
        bail!("no system call named after {:?}", words[0]);
    }
    let mut rest = &words[1 + names.len()..];
    let mut test = None;
    if let ["where", after @ ..] = rest {
        let end = after.iter().position(keyword).unwrap_or(after.len());
        test = Some(parse_test(&after[..end])?);
        rest = &after[end..];
    }
    let capability = match rest {
        [] => None,
        [condition @ ("if" | "unless"), name] => match Capability::from_str(name) {
            Ok(cap) => Some((cap, *condition == "if")),
            Err(_) => bail!("unknown capability {name:?}: use a name from capabilities(7), like CAP_SYS_ADMIN"),
        },
        _ => bail!("expected `if CAP_…` or `unless CAP_…` after the names and test, found {:?}", rest.join(" ")),
    };
    if test.is_some() && action != Action::Allow {
        bail!("only `allow` rules may test arguments");
    }
    Ok(Rule { line, action, names, test, capability })
}

/// `argN[:u32] OP VALUE` or `argN[:u32] & MASK == VALUE`.
fn parse_test(words: &[&str]) -> Result<Test> {
    let usage = "a test is `argN OP VALUE` or `argN & MASK == VALUE`, OP one of == != < <= > >=";
    let (argument, op, value) = match words {
        [argument, "&", mask, "==", value] => (argument, SeccompCmpOp::MaskedEq(number(mask)?), value),
        [argument, op, value] => {
            let op = match *op {
                "==" => SeccompCmpOp::Eq,
                "!=" => SeccompCmpOp::Ne,
                "<" => SeccompCmpOp::Lt,
                "<=" => SeccompCmpOp::Le,
                ">" => SeccompCmpOp::Gt,
                ">=" => SeccompCmpOp::Ge,
                _ => bail!("unknown comparison {op:?}: {usage}"),
            };
            (argument, op, value)
        }
        _ => bail!("{usage}; found {:?}", words.join(" ")),
    };
    let (index, width) = match argument.strip_suffix(":u32") {
        Some(index) => (index, SeccompCmpArgLen::Dword),
        None => (*argument, SeccompCmpArgLen::Qword),
    };
    let index = match index.strip_prefix("arg").and_then(|digit| digit.parse::<u8>().ok()) {
        Some(index) if index < 6 => index,
        _ => bail!("unknown argument {argument:?}: use arg0 to arg5, with :u32 for an int"),
    };
    let value = number(value)?;
    if width == SeccompCmpArgLen::Dword && value > u64::from(u32::MAX) {
        bail!("{value:#x} does not fit the 32 bits of {argument}");
    }
    Ok(Test { index, width, op, value })
}

/// A decimal or `0x` hexadecimal number.
fn number(text: &str) -> Result<u64> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.with_context(|| format!("{text:?} is not a number (decimal, or hexadecimal with 0x)"))
}

/// The profile's rules for a container that keeps `keep`, compiled for `arch`.
fn build(text: &str, keep: &HashSet<Capability>, arch: Arch) -> Result<Filter> {
    let plan = plan(text, keep, arch)?;
    // The main program is laid out as a binary search (`cbpf`): the same
    // answers as seccompiler's row of comparisons, a seventh of the size.
    let default = u32::from(SeccompAction::Errno(plan.default as u32));
    let mut programs: Vec<BpfProgram> = vec![cbpf::compile(arch.audit(), &plan.decisions, default)?];
    let mut named = Vec::new();
    for (errno, calls) in plan.errnos {
        named.extend(calls.values().map(|(name, _)| format!("{name}: {:?}", Errno::from_raw(errno))));
        let filter = SeccompFilter::new(
            calls.keys().map(|call| (*call, Vec::new())).collect(),
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch.target(),
        )?;
        programs.push(filter.try_into()?);
    }
    Ok(Filter { programs, allowed: plan.decisions.len(), errnos: named })
}

/// What the profile answers, call by call, for a container that keeps `keep`.
struct Plan {
    default: Errno,
    /// The calls the main program allows, in order: always, or when one of
    /// their tests passes.
    decisions: Vec<(u32, Decision)>,
    /// For each errno: the calls that get it, and the line that said so.
    errnos: BTreeMap<i32, BTreeMap<i64, (String, usize)>>,
}

fn plan(text: &str, keep: &HashSet<Capability>, arch: Arch) -> Result<Plan> {
    let profile = parse(text)?;
    // For each call: None when allowed whatever its arguments, else the
    // argument tests of which any one allows it.
    let mut allowed: BTreeMap<i64, Option<Vec<Test>>> = BTreeMap::new();
    let mut errnos: BTreeMap<i32, BTreeMap<i64, (String, usize)>> = BTreeMap::new();
    for rule in profile.rules.iter().filter(|rule| rule.applies(keep)) {
        for name in &rule.names {
            let Some(call) = arch.number(name) else { continue };
            match (rule.action, &rule.test) {
                (Action::Allow, None) => {
                    allowed.insert(call, None);
                }
                (Action::Allow, Some(test)) => {
                    if let Some(tests) = allowed.entry(call).or_insert_with(|| Some(Vec::new())) {
                        tests.push(test.clone());
                    }
                }
                (Action::Errno(errno), _) => {
                    errnos.entry(errno as i32).or_default().insert(call, (name.clone(), rule.line));
                }
            }
        }
    }
    // A call with its own errno is allowed by the main filter, so that the
    // errno filter's answer is the one that counts, whatever the order.
    for calls in errnos.values() {
        for (call, (name, line)) in calls {
            if allowed.insert(*call, None).is_some() {
                bail!("{name} is both allowed and given an errno (line {line}) for these capabilities");
            }
        }
    }
    let decisions = allowed
        .into_iter()
        .map(|(call, tests)| (call as u32, tests.map_or(Decision::Allow, Decision::AllowWhen)))
        .collect();
    Ok(Plan { default: profile.default, decisions, errnos })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_default_caps() -> HashSet<Capability> {
        crate::ids::DEFAULT_CAPS.iter().copied().collect()
    }

    #[test]
    fn every_name_in_the_profile_is_a_call_of_x86_64_or_aarch64() {
        let profile = parse(DEFAULT_PROFILE).unwrap();
        let unknown: Vec<&str> =
            profile.names().filter(|name| Arch::X86_64.number(name).or(Arch::Aarch64.number(name)).is_none()).collect();
        assert!(unknown.is_empty(), "not a system call on x86_64 nor aarch64 (a typo?): {unknown:?}");
        assert_eq!(profile.default, Errno::EPERM);
    }

    #[test]
    fn the_profile_compiles_for_both_architectures_and_every_capability_set() {
        let all: HashSet<Capability> = caps::all();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for keep in [HashSet::new(), docker_default_caps(), all.clone()] {
                let filter = build(DEFAULT_PROFILE, &keep, arch).unwrap();
                assert!(filter.programs.iter().all(|program| program.len() <= 4096), "{filter:?}");
            }
        }
    }

    #[test]
    fn clone3_gets_enosys_unless_the_container_keeps_sys_admin() {
        let filter = build(DEFAULT_PROFILE, &docker_default_caps(), Arch::X86_64).unwrap();
        assert_eq!(filter.errnos(), ["clone3: ENOSYS"]);
        assert_eq!(filter.programs(), 2);
        let mut keep = docker_default_caps();
        keep.insert(Capability::CAP_SYS_ADMIN);
        let admin = build(DEFAULT_PROFILE, &keep, Arch::X86_64).unwrap();
        assert!(admin.errnos().is_empty());
        assert_eq!(admin.programs(), 1);
        // mount, unshare, setns, clone3, bpf, perf_event_open, … come with it.
        assert!(admin.allowed() > filter.allowed() + 20, "{filter:?} vs {admin:?}");
    }

    /// seccompiler's program for the same plan: a row of comparisons.
    fn in_a_row(plan: &Plan, arch: Arch) -> BpfProgram {
        use seccompiler::{SeccompCondition, SeccompRule};
        let rules = plan
            .decisions
            .iter()
            .map(|(call, decision)| {
                let rules = match decision {
                    Decision::Allow => Vec::new(),
                    Decision::AllowWhen(tests) => tests
                        .iter()
                        .map(|test| {
                            let condition =
                                SeccompCondition::new(test.index, test.width.clone(), test.op.clone(), test.value)
                                    .unwrap();
                            SeccompRule::new(vec![condition]).unwrap()
                        })
                        .collect(),
                };
                (i64::from(*call), rules)
            })
            .collect();
        let default = SeccompAction::Errno(plan.default as u32);
        SeccompFilter::new(rules, default, SeccompAction::Allow, arch.target()).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_search_answers_as_seccompilers_row_does_for_every_call_and_argument() {
        let values: Vec<u64> = [0u64, 1, 8, 37, 38, 39, 40, 41, 0x8, 0x20000, 0x20008, 0x0800_0000, 0x7e02_0000]
            .into_iter()
            .chain([0x1000_0000, 0xffff_fffe, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0028, u64::MAX])
            .collect();
        let all: HashSet<Capability> = caps::all();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for keep in [HashSet::new(), docker_default_caps(), all.clone()] {
                let plan = plan(DEFAULT_PROFILE, &keep, arch).unwrap();
                let default = u32::from(SeccompAction::Errno(plan.default as u32));
                let search = cbpf::compile(arch.audit(), &plan.decisions, default).unwrap();
                let row = in_a_row(&plan, arch);
                assert!(search.len() * 3 < row.len(), "{} instructions against {}", search.len(), row.len());
                let calls = (0..1024u32).chain([0x4000_0000, 0x4000_0029, 0x7fff_ffff, u32::MAX]);
                for nr in calls {
                    for value in &values {
                        let args = [*value, *value, 0, 0, 0, 0];
                        for audit in [arch.audit(), 0x4000_0003] {
                            let (got, want) = (cbpf::run(&search, nr, audit, args), cbpf::run(&row, nr, audit, args));
                            assert_eq!(got, want, "{arch:?} call {nr} args {args:x?} arch {audit:#x}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_comparison_answers_as_seccompilers_on_both_halves_of_an_argument() {
        let ops = [
            SeccompCmpOp::Eq,
            SeccompCmpOp::Ne,
            SeccompCmpOp::Lt,
            SeccompCmpOp::Le,
            SeccompCmpOp::Gt,
            SeccompCmpOp::Ge,
            SeccompCmpOp::MaskedEq(0xff00_0000_00ff),
        ];
        let points = [0u64, 1, 0xff, 0x100, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 0xff00_0000_00ff, u64::MAX];
        for width in [SeccompCmpArgLen::Dword, SeccompCmpArgLen::Qword] {
            for op in &ops {
                for value in points {
                    let value = if width == SeccompCmpArgLen::Dword { value & 0xffff_ffff } else { value };
                    let value = match op {
                        SeccompCmpOp::MaskedEq(mask) => value & mask,
                        _ => value,
                    };
                    let test = Test { index: 2, width: width.clone(), op: op.clone(), value };
                    let plan = Plan {
                        default: Errno::EPERM,
                        decisions: vec![(7, Decision::AllowWhen(vec![test.clone()])), (9, Decision::Allow)],
                        errnos: BTreeMap::new(),
                    };
                    let default = u32::from(SeccompAction::Errno(Errno::EPERM as u32));
                    let search = cbpf::compile(Arch::X86_64.audit(), &plan.decisions, default).unwrap();
                    let row = in_a_row(&plan, Arch::X86_64);
                    for arg in points.iter().flat_map(|point| [*point, point.wrapping_sub(1), point.wrapping_add(1)]) {
                        let args = [0, 0, arg, 0, 0, 0];
                        for nr in [6, 7, 8, 9, 10] {
                            let (got, want) = (
                                cbpf::run(&search, nr, Arch::X86_64.audit(), args),
                                cbpf::run(&row, nr, Arch::X86_64.audit(), args),
                            );
                            assert_eq!(got, want, "{test:?} on {arg:#x}, call {nr}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn names_the_other_architecture_lacks_are_skipped() {
        assert_eq!(Arch::X86_64.number("open"), Some(2));
        assert_eq!(Arch::Aarch64.number("open"), None);
        assert_eq!(Arch::Aarch64.number("openat"), Some(56));
        assert!(build("default errno=EPERM\nallow open openat\n", &HashSet::new(), Arch::Aarch64).is_ok());
    }

    #[test]
    fn bad_lines_are_named_with_the_fix() {
        let err = |text: &str| format!("{:#}", build(text, &HashSet::new(), Arch::X86_64).unwrap_err());
        assert_eq!(err("allow read\n"), "no `default errno=…` line");
        assert!(
            err("default errno=EPERM\npermit read\n").contains("line 2: \"permit read\": unknown action \"permit\"")
        );
        assert!(err("default errno=EPERM\nallow read if SYS_ADMIN\n").contains("unknown capability \"SYS_ADMIN\""));
        assert!(err("default errno=EPERM\nallow socket where arg0 ~ 3\n").contains("unknown comparison \"~\""));
        assert!(err("default errno=EPERM\nallow socket where arg6 == 3\n").contains("use arg0 to arg5"));
        assert!(err("default errno=EPERM\nallow socket where arg0:u32 == 0x100000000\n").contains("does not fit"));
        assert!(err("default errno=EPERM\nerrno=ENOSYS clone3 where arg0 == 1\n").contains("only `allow` rules"));
        assert!(err("default errno=EPERM\nallow where\n").contains("no system call named"));
        assert!(err("default errno=EPERM\nallow clone3\nerrno=ENOSYS clone3\n").contains("clone3 is both allowed"));
    }

    /// Runs `probes` in a forked child under `filter` and returns what each
    /// call returned (-errno on failure). The child sets no_new_privs first,
    /// so that the test needs no root; it allocates nothing after fork.
    fn under_filter(filter: &Filter, probes: &[(i64, [u64; 3])]) -> Vec<i64> {
        use std::os::fd::AsRawFd;
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes raw system calls, writes to a pipe and
        // calls _exit: all async-signal-safe, as needed after fork in a
        // multi-threaded test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: plain system calls on integers; the buffers are
                // local and outlive each call.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                        || seccomp_set_mode_filter(filter).is_err()
                    {
                        libc::_exit(3);
                    }
                    for (call, args) in probes {
                        let mut res = libc::syscall(*call, args[0], args[1], args[2]);
                        if res < 0 {
                            res = -i64::from(*libc::__errno_location());
                        }
                        libc::write(write_end.as_raw_fd(), &res as *const i64 as *const libc::c_void, 8);
                    }
                    libc::_exit(0);
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(write_end);
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "the probing child failed");
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut bytes).unwrap();
                bytes.chunks(8).map(|chunk| i64::from_ne_bytes(chunk.try_into().unwrap())).collect()
            }
        }
    }

    /// What a probe expects back from the kernel.
    #[derive(Debug)]
    enum Answer {
        /// EPERM: the profile's default for a call no rule allows.
        Refused,
        Errno(Errno),
        /// Not an error: the filter let the call through and it worked.
        Works,
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_kernel_refuses_what_the_profile_does_not_allow() {
        use Answer::*;
        let probes: &[(&str, i64, [u64; 3], Answer)] = &[
            ("getpid()", libc::SYS_getpid, [0, 0, 0], Works),
            // KEYCTL_GET_KEYRING_ID of the session keyring: keyrings are not namespaced.
            ("keyctl(KEYCTL_GET_KEYRING_ID)", libc::SYS_keyctl, [0, -3i64 as u64, 0], Refused),
            ("add_key(NULL)", libc::SYS_add_key, [0, 0, 0], Refused),
            ("bpf(-1)", libc::SYS_bpf, [u64::MAX, 0, 0], Refused),
            ("perf_event_open(NULL)", libc::SYS_perf_event_open, [0, 0, 0], Refused),
            ("kexec_load(0)", libc::SYS_kexec_load, [0, 0, 0], Refused),
            ("unshare(CLONE_NEWUSER)", libc::SYS_unshare, [libc::CLONE_NEWUSER as u64, 0, 0], Refused),
            ("clone(CLONE_NEWUSER)", libc::SYS_clone, [libc::CLONE_NEWUSER as u64, 0, 0], Refused),
            ("mount(NULL)", libc::SYS_mount, [0, 0, 0], Refused),
            ("socket(AF_VSOCK)", libc::SYS_socket, [40, 1, 0], Refused),
            ("socket(AF_ALG)", libc::SYS_socket, [38, 5, 0], Refused),
            // The kernel reads an int: high bits must not smuggle AF_VSOCK past the filter.
            ("socket(0x1_0000_0028)", libc::SYS_socket, [0x1_0000_0028, 1, 0], Refused),
            ("socket(AF_UNIX)", libc::SYS_socket, [1, 1, 0], Works),
            ("personality(0xffffffff)", libc::SYS_personality, [0xffff_ffff, 0, 0], Works),
            ("personality(ADDR_LIMIT_3GB)", libc::SYS_personality, [0x0800_0000, 0, 0], Refused),
            // ENOSYS, not EPERM: glibc then falls back to clone(2).
            ("clone3(NULL, 0)", libc::SYS_clone3, [0, 0, 0], Errno(nix::errno::Errno::ENOSYS)),
        ];
        let calls: Vec<(i64, [u64; 3])> = probes.iter().map(|(_, call, args, _)| (*call, *args)).collect();
        let filter = build(DEFAULT_PROFILE, &docker_default_caps(), Arch::X86_64).unwrap();
        let results = under_filter(&filter, &calls);
        for ((name, _, _, answer), res) in probes.iter().zip(&results) {
            let right = match answer {
                Refused => *res == -(nix::errno::Errno::EPERM as i64),
                Errno(errno) => *res == -(*errno as i64),
                Works => *res >= 0,
            };
            assert!(right, "{name} returned {res}, expected {answer:?}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn cap_sys_admin_lets_the_namespace_calls_through_but_never_keyctl() {
        let mut keep = docker_default_caps();
        keep.insert(Capability::CAP_SYS_ADMIN);
        let filter = build(DEFAULT_PROFILE, &keep, Arch::X86_64).unwrap();
        let results = under_filter(
            &filter,
            &[(libc::SYS_unshare, [0, 0, 0]), (libc::SYS_clone3, [0, 0, 0]), (libc::SYS_keyctl, [0, -3i64 as u64, 0])],
        );
        // unshare(0) does nothing and succeeds; clone3 reaches the kernel,
        // which refuses a zero size with EINVAL.
        assert_eq!(results, [0, -(Errno::EINVAL as i64), -(Errno::EPERM as i64)]);
    }
}
