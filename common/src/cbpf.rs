//! A seccomp profile as classic BPF laid out as a binary search, the way
//! libseccomp lays it out with `SCMP_FLTATR_CTL_OPTIMIZE=2`, instead of one
//! comparison per allowed call in a row (seccompiler's layout).
//!
//! Why: loading a filter costs the kernel work in proportion to how it is
//! laid out. seccomp(2) checks and converts the program, JIT-compiles it in
//! several passes, and then, for its per-call cache, runs it once for every
//! system call number of the architecture to find the calls it always
//! allows. Docker's profile in a row is 1,595 instructions, and a call
//! near its end walks through most of them: that load took 1.0-1.2 ms of
//! every container start. As a search it is 225 instructions, any call is
//! decided in about ten comparisons, and the load takes about 0.1 ms.
//!
//! The program: the architecture check, then the call number in the
//! accumulator, then a tree of `jge` comparisons over the ranges of numbers
//! that share an answer (a run of allowed calls is one range), each leaf a
//! `ret` or, for a call allowed only for some arguments, its tests.

use anyhow::{Result, bail};
use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCmpOp, sock_filter};

/// What a call gets: allowed, allowed when any of `tests` passes, or the
/// profile's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    AllowWhen(Vec<Test>),
}

/// One test on one argument (`arg0:u32 < 38`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    pub index: u8,
    pub width: SeccompCmpArgLen,
    pub op: SeccompCmpOp,
    pub value: u64,
}

/// A program that kills a process of another architecture, answers
/// `decisions` for the calls they name, and `default` (a `SECCOMP_RET_*`
/// value) for every other call.
pub fn compile(audit_arch: u32, decisions: &[(u32, Decision)], default: u32) -> Result<BpfProgram> {
    // The ranges, in order, that cover every 32-bit call number.
    let mut ranges: Vec<(u32, Leaf)> = Vec::new();
    let mut next = 0u64;
    for (call, decision) in decisions {
        if u64::from(*call) < next {
            bail!("the calls must be given once each, in order ({call} is not)");
        }
        if u64::from(*call) > next {
            push(&mut ranges, next as u32, Leaf::Default);
        }
        let leaf = match decision {
            Decision::Allow => Leaf::Allow,
            Decision::AllowWhen(tests) => Leaf::Tests(tests),
        };
        push(&mut ranges, *call, leaf);
        next = u64::from(*call) + 1;
    }
    if next <= u64::from(u32::MAX) {
        push(&mut ranges, next as u32, Leaf::Default);
    }

    let mut program = vec![
        statement(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
        jump(BPF_JEQ, audit_arch, 1, 0),
        statement(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        statement(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    ];
    search(&mut program, &ranges, default)?;
    if program.len() > libc::BPF_MAXINSNS as usize {
        bail!("the profile compiles to {} instructions, more than the kernel's {}", program.len(), libc::BPF_MAXINSNS);
    }
    Ok(program)
}

/// Classic BPF's opcodes (<linux/bpf_common.h>), as `sock_filter.code` holds them.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

/// Offsets in `struct seccomp_data`: nr, arch, then six 64-bit args.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

/// What a range of call numbers gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf<'a> {
    Allow,
    Default,
    Tests(&'a [Test]),
}

/// Adds the range starting at `start`, or widens the last one when it has
/// the same plain answer.
fn push<'a>(ranges: &mut Vec<(u32, Leaf<'a>)>, start: u32, leaf: Leaf<'a>) {
    let plain = !matches!(leaf, Leaf::Tests(_));
    if plain && ranges.last().is_some_and(|(_, last)| *last == leaf) {
        return;
    }
    ranges.push((start, leaf));
}

/// The tree over `ranges` (each from its start to the next one's), with
/// the call number in the accumulator.
fn search(program: &mut BpfProgram, ranges: &[(u32, Leaf)], default: u32) -> Result<()> {
    if let [(_, leaf)] = ranges {
        return decide(program, *leaf, default);
    }
    let middle = ranges.len() / 2;
    // if nr >= start of the middle range: the upper half, else the lower.
    program.push(jump(BPF_JGE, ranges[middle].0, 0, 1));
    let to_upper = program.len();
    program.push(statement(BPF_JMP | BPF_JA, 0));
    search(program, &ranges[..middle], default)?;
    program[to_upper].k = (program.len() - to_upper - 1) as u32;
    search(program, &ranges[middle..], default)
}

/// A leaf: its answer, or its tests.
fn decide(program: &mut BpfProgram, leaf: Leaf, default: u32) -> Result<()> {
    match leaf {
        Leaf::Allow => program.push(statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW)),
        Leaf::Default => program.push(statement(BPF_RET | BPF_K, default)),
        Leaf::Tests(tests) => {
            for test in tests {
                let block = test_block(test);
                // A branch to Pass lands on the `ret ALLOW` after the
                // block, one to Fail just after that: the next test.
                let pass = block.len();
                for (at, step) in block.iter().enumerate() {
                    let offset = |target: Target| -> Result<u8> {
                        let to = match target {
                            Target::Next => return Ok(0),
                            Target::Pass => pass,
                            Target::Fail => pass + 1,
                        };
                        Ok(u8::try_from(to - at - 1)?)
                    };
                    let mut instruction = statement(step.code, step.k);
                    if let Some((jt, jf)) = step.branches {
                        instruction.jt = offset(jt)?;
                        instruction.jf = offset(jf)?;
                    }
                    program.push(instruction);
                }
                program.push(statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
            }
            program.push(statement(BPF_RET | BPF_K, default));
        }
    }
    Ok(())
}

/// Where a branch of a test goes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Next,
    Pass,
    Fail,
}

/// One instruction of a test, its branches still named.
struct Step {
    code: u16,
    k: u32,
    branches: Option<(Target, Target)>,
}

/// The instructions of one test: they reach Pass when the argument passes
/// (or fall off the end), Fail when it does not. Arguments are 64-bit
/// little-endian words (x86_64 and aarch64): the low half first.
fn test_block(test: &Test) -> Vec<Step> {
    use Target::{Fail, Next, Pass};
    let low = ARGS_OFFSET + 8 * u32::from(test.index);
    let high = low + 4;
    let load = |offset| Step { code: BPF_LD | BPF_W | BPF_ABS, k: offset, branches: None };
    let and = |mask| Step { code: BPF_ALU | BPF_AND | BPF_K, k: mask, branches: None };
    let cmp = |op, k, jt, jf| Step { code: BPF_JMP | op | BPF_K, k, branches: Some((jt, jf)) };
    let (value_high, value_low) = ((test.value >> 32) as u32, test.value as u32);
    match (&test.width, &test.op) {
        // The low 32 bits only: an int argument, whatever the upper half holds.
        (SeccompCmpArgLen::Dword, op) => {
            let mut block = vec![load(low)];
            block.extend(match op {
                SeccompCmpOp::Eq => vec![cmp(BPF_JEQ, value_low, Next, Fail)],
                SeccompCmpOp::Ne => vec![cmp(BPF_JEQ, value_low, Fail, Next)],
                SeccompCmpOp::Gt => vec![cmp(BPF_JGT, value_low, Next, Fail)],
                SeccompCmpOp::Ge => vec![cmp(BPF_JGE, value_low, Next, Fail)],
                SeccompCmpOp::Lt => vec![cmp(BPF_JGE, value_low, Fail, Next)],
                SeccompCmpOp::Le => vec![cmp(BPF_JGT, value_low, Fail, Next)],
                SeccompCmpOp::MaskedEq(mask) => vec![and(*mask as u32), cmp(BPF_JEQ, value_low, Next, Fail)],
            });
            block
        }
        // All 64 bits: the high halves decide unless they are equal.
        (SeccompCmpArgLen::Qword, op) => match op {
            SeccompCmpOp::Eq => {
                vec![load(high), cmp(BPF_JEQ, value_high, Next, Fail), load(low), cmp(BPF_JEQ, value_low, Next, Fail)]
            }
            SeccompCmpOp::Ne => {
                vec![load(high), cmp(BPF_JEQ, value_high, Next, Pass), load(low), cmp(BPF_JEQ, value_low, Fail, Pass)]
            }
            SeccompCmpOp::Gt => vec![
                load(high),
                cmp(BPF_JGT, value_high, Pass, Next),
                cmp(BPF_JEQ, value_high, Next, Fail),
                load(low),
                cmp(BPF_JGT, value_low, Pass, Fail),
            ],
            SeccompCmpOp::Ge => vec![
                load(high),
                cmp(BPF_JGT, value_high, Pass, Next),
                cmp(BPF_JEQ, value_high, Next, Fail),
                load(low),
                cmp(BPF_JGE, value_low, Pass, Fail),
            ],
            SeccompCmpOp::Lt => vec![
                load(high),
                cmp(BPF_JGT, value_high, Fail, Next),
                cmp(BPF_JEQ, value_high, Next, Pass),
                load(low),
                cmp(BPF_JGE, value_low, Fail, Pass),
            ],
            SeccompCmpOp::Le => vec![
                load(high),
                cmp(BPF_JGT, value_high, Fail, Next),
                cmp(BPF_JEQ, value_high, Next, Pass),
                load(low),
                cmp(BPF_JGT, value_low, Fail, Pass),
            ],
            SeccompCmpOp::MaskedEq(mask) => vec![
                load(high),
                and((mask >> 32) as u32),
                cmp(BPF_JEQ, value_high, Next, Fail),
                load(low),
                and(*mask as u32),
                cmp(BPF_JEQ, value_low, Next, Fail),
            ],
        },
    }
}

fn statement(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(op: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code: BPF_JMP | op | BPF_K, jt, jf, k }
}

/// A classic BPF interpreter for seccomp programs, enough for the ones
/// above and seccompiler's, to compare what two programs answer.
#[cfg(test)]
pub(crate) fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let word = |offset: u32| -> u32 {
        match offset {
            0 => nr,
            4 => arch,
            16..=63 => {
                let arg = args[((offset - 16) / 8) as usize];
                if offset.is_multiple_of(8) { arg as u32 } else { (arg >> 32) as u32 }
            }
            _ => panic!("load at {offset}"),
        }
    };
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let ins = &program[pc];
        pc += 1;
        match ins.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => a = word(ins.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= ins.k,
            c if c == BPF_RET | BPF_K => return ins.k,
            c if c == BPF_JMP | BPF_JA => pc += ins.k as usize,
            c => {
                let taken = match c & !(BPF_JMP | BPF_K) {
                    BPF_JEQ => a == ins.k,
                    BPF_JGT => a > ins.k,
                    BPF_JGE => a >= ins.k,
                    _ => panic!("instruction {c:#x} at {}", pc - 1),
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
        }
    }
}
