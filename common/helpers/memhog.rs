//! memhog SIZE [SECONDS]: allocates SIZE bytes (suffix k, m or g) and writes
//! to every page, so the memory is really used, not just reserved; with
//! SECONDS, it holds the memory that long before exiting (to read the
//! cgroup's counters meanwhile). The OOM checks rely
//! on it being deterministic:
//! - under a memory cgroup limit smaller than SIZE, the kernel kills it
//!   (SIGKILL, exit status 137 seen from outside);
//! - under `ulimit -v` / RLIMIT_AS smaller than SIZE, the allocation itself
//!   fails and memhog says so and exits 1.

use std::env;
use std::process::exit;

fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (&text[..], 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let hold = match args.get(1).map(|seconds| seconds.parse::<u64>()) {
        None => 0,
        Some(Ok(seconds)) if args.len() == 2 => seconds,
        Some(_) => usage(),
    };
    let Some(size) = args.first().and_then(|size| parse_size(size)) else { usage() };
    let mut memory: Vec<u8> = Vec::new();
    if let Err(err) = memory.try_reserve_exact(size) {
        eprintln!("memhog: cannot allocate {size} bytes: {err}");
        exit(1);
    }
    // Filling with a non-zero byte writes every page, so each one is faulted
    // in and charged to our memory cgroup; black_box keeps the optimiser from
    // dropping memory that is never read.
    memory.resize(size, 1);
    std::hint::black_box(&memory);
    println!("memhog: allocated and touched {} MiB", size >> 20);
    if hold > 0 {
        std::thread::sleep(std::time::Duration::from_secs(hold));
        std::hint::black_box(&memory);
    }
}

fn usage() -> ! {
    eprintln!("usage: memhog SIZE [SECONDS]   (bytes, or with a k, m or g suffix: memhog 64m 5)");
    exit(2);
}
