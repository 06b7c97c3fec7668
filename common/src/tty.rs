//! `-t`: the runtime's half of the container's terminal.
//!
//! The step makes the terminal, where the calls show: the container's first
//! process, in a session of its own (setsid(2)), opens a pseudo-terminal pair
//! in the container's own /dev/pts (openpty(3)), sends the master to the
//! runtime over the socket it was set up through, and makes the slave its
//! controlling terminal ([`tiocsctty`]) and its stdin, stdout and stderr
//! (dup2(2)). runc's init does the same, over its "console socket". The pair
//! is made inside, not by the runtime, because a terminal's name belongs to
//! its devpts instance: a slave opened on the host's /dev/pts shows up inside
//! as a /dev/pts/N that is not there (or is another terminal), and `tty`
//! answers "not a tty".
//!
//! What is left is plumbing, and it is here. [`Relay`] copies the caller's
//! stdin to the master and the master to the caller's stdout, on a thread of
//! its own: the main thread stays in waitpid(2), which must also see the
//! container stop under ptrace (`status::detach`), something poll(2) cannot
//! wait for. The thread starts after clone(2), so the clone still happens in
//! a single-threaded process, and no fork follows. While it runs, the
//! caller's terminal, when stdin is one, is in raw mode ([`RawMode`]): every
//! key, Ctrl-C included, reaches the container's terminal as a byte, and the
//! container's line discipline, not the caller's, turns ^C into SIGINT for
//! the container's foreground job, so that a shell inside keeps its job
//! control. The container's terminal starts at the caller's size
//! ([`window_size`]) and follows it: the runtime catches SIGWINCH and copies
//! the new size to the master (TIOCSWINSZ), and the kernel sends the
//! container's foreground job a SIGWINCH of its own.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::{Once, OnceLock};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::Winsize;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{isatty, pipe2, read, write};

/// ioctl(terminal, TIOCSCTTY, 0) (ioctl_tty(2)): `terminal` becomes the
/// controlling terminal of the caller's session. The caller must lead a
/// session that has none, as just after setsid(2); the 0 says: fail rather
/// than take the terminal from another session (that needs CAP_SYS_ADMIN).
pub fn tiocsctty(terminal: &impl AsFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument, not a pointer.
    Errno::result(unsafe { libc::ioctl(terminal.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// The size of the caller's terminal: TIOCGWINSZ on stdin, else on stdout;
/// 0 rows and 0 columns (what a new terminal starts with) when neither is a
/// terminal.
pub fn window_size() -> Winsize {
    [io::stdin().as_fd(), io::stdout().as_fd()].into_iter().find_map(|fd| get_window_size(fd).ok()).unwrap_or(Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

fn get_window_size(terminal: BorrowedFd<'_>) -> nix::Result<Winsize> {
    let mut size = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one struct winsize through the pointer,
    // which points at a live one.
    Errno::result(unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCGWINSZ, &mut size) })?;
    Ok(size)
}

fn set_window_size(terminal: BorrowedFd<'_>, size: &Winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer.
    Errno::result(unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, size) }).map(drop)
}

/// Gives `to` the window size of `from`. On a pty master this sets the size
/// its slave reports, and the kernel sends SIGWINCH to the slave's
/// foreground process group when the size changed.
fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(size) = get_window_size(from) {
        let _ = set_window_size(to, &size);
    }
}

/// A terminal in raw mode (cfmakeraw(3): no echo, no line editing, no
/// signals from keys, no output processing) for as long as this lives. Its
/// settings are put back when it is dropped, and also by the handler of any
/// signal that would end the runtime on the way ([`FATAL`]); only SIGKILL
/// and SIGSTOP, which no process can catch, leave it raw (`stty sane` fixes
/// a terminal left so).
pub struct RawMode {
    terminal: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts `terminal` in raw mode; `None` when it is not a terminal (or
    /// one whose modes cannot be read, such as a terminal that hung up).
    pub fn enable(terminal: BorrowedFd<'_>) -> io::Result<Option<RawMode>> {
        let Ok(saved) = tcgetattr(terminal) else {
            return Ok(None);
        };
        let terminal = terminal.try_clone_to_owned()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        remember(terminal.as_raw_fd(), &saved);
        if let Err(errno) = tcsetattr(&terminal, SetArg::TCSANOW, &raw) {
            forget();
            return Err(errno.into());
        }
        Ok(Some(RawMode { terminal, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSANOW, not TCSADRAIN: a terminal whose reader went away would
        // never drain, and the runtime would hang here.
        let _ = tcsetattr(&self.terminal, SetArg::TCSANOW, &self.saved);
        forget();
    }
}

/// Signals whose default action ends the runtime and that nothing else in
/// it catches (SIGTERM, SIGHUP, SIGINT and SIGQUIT are `signals`' and end
/// the container, not the runtime; SIGPIPE is ignored by Rust programs).
/// SIGABRT is how a panic ends a release build (`panic = "abort"`).
const FATAL: [Signal; 17] = [
    Signal::SIGABRT,
    Signal::SIGALRM,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGIO,
    Signal::SIGPROF,
    Signal::SIGPWR,
    Signal::SIGSEGV,
    Signal::SIGSTKFLT,
    Signal::SIGSYS,
    Signal::SIGTRAP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGVTALRM,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
];

/// What a signal handler puts back: the terminal and its settings. Each one
/// is leaked on purpose (a few bytes per run): a handler on another thread
/// may still be reading the previous one.
struct Saved {
    terminal: RawFd,
    termios: libc::termios,
}

static SAVED: AtomicPtr<Saved> = AtomicPtr::new(std::ptr::null_mut());

fn remember(terminal: RawFd, termios: &Termios) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SA_ONSTACK: a stack overflow (SIGSEGV) can only be handled on the
        // alternate stack Rust sets up for it.
        let restore = SigAction::new(SigHandler::Handler(restore_then_die), SaFlags::SA_ONSTACK, SigSet::empty());
        for signal in FATAL {
            // SAFETY: `restore_then_die` only makes async-signal-safe calls.
            let _ = unsafe { sigaction(signal, &restore) };
        }
    });
    let saved = Box::new(Saved { terminal, termios: termios.clone().into() });
    SAVED.store(Box::into_raw(saved), Ordering::SeqCst);
}

fn forget() {
    SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
}

extern "C" fn restore_then_die(signal: libc::c_int) {
    let saved = SAVED.load(Ordering::SeqCst);
    if !saved.is_null() {
        // SAFETY: a non-null pointer is a leaked `Saved`, never freed;
        // tcsetattr(3) is an ioctl, async-signal-safe.
        unsafe { libc::tcsetattr((*saved).terminal, libc::TCSANOW, &(*saved).termios) };
    }
    // SAFETY: signal(2) and raise(3) are async-signal-safe. The default
    // action then ends the runtime as it would have without this handler.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Where the SIGWINCH handler writes a byte for the relay to wake up: the
/// write end of a non-blocking pipe, made once per process.
static RESIZED: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_resize(_: libc::c_int) {
    let errno = Errno::last_raw();
    // SAFETY: write(2) is async-signal-safe. The pipe is non-blocking: when
    // it is full, a resize is already waiting, and this byte is not needed.
    unsafe { libc::write(RESIZED.load(Ordering::SeqCst), b"w".as_ptr().cast(), 1) };
    Errno::set_raw(errno);
}

/// Catches SIGWINCH from now on (its default action is to ignore it) and
/// returns the pipe that wakes the relay when it arrives.
fn watch_window_size() -> io::Result<BorrowedFd<'static>> {
    static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();
    if PIPE.get().is_none() {
        let pipe = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let _ = PIPE.set(pipe);
    }
    let (read_end, write_end) = PIPE.get().expect("set just above");
    RESIZED.store(write_end.as_raw_fd(), Ordering::SeqCst);
    let catch = SigAction::new(SigHandler::Handler(on_resize), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: `on_resize` only makes one async-signal-safe call.
    unsafe { sigaction(Signal::SIGWINCH, &catch) }?;
    Ok(read_end.as_fd())
}

/// The relay between the caller and the container's terminal, running on a
/// thread of its own until the container's end. Dropping it stops it too.
pub struct Relay {
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Closed to tell the thread that the container has ended.
    stop: Option<OwnedFd>,
    raw: Option<RawMode>,
}

impl Relay {
    /// Relays between the caller's stdin and stdout and the container's
    /// terminal, `master`.
    pub fn start(master: OwnedFd) -> anyhow::Result<Relay> {
        let started = io::stdin().as_fd().try_clone_to_owned().and_then(|input| {
            let output = io::stdout().as_fd().try_clone_to_owned()?;
            Relay::between(master, input, output)
        });
        let relay = started
            .map_err(|err| anyhow::anyhow!("cannot relay the container's terminal (-t) to stdin and stdout: {err}"))?;
        let raw = if relay.raw.is_some() { "; stdin, a terminal, is in raw mode" } else { "" };
        crate::trace::note(&format!("relaying the container's terminal to stdin and stdout on a thread{raw}"));
        Ok(relay)
    }

    /// Relays `input` to `master` and `master` to `output`. When `input` is
    /// a terminal it is in raw mode until the relay ends; the window size is
    /// taken from `input`, else from `output`, whichever is a terminal.
    pub fn between(master: OwnedFd, input: OwnedFd, output: OwnedFd) -> io::Result<Relay> {
        let raw = RawMode::enable(input.as_fd())?;
        let sized_by = [&input, &output].into_iter().find(|fd| isatty(fd).unwrap_or(false));
        let sized_by = sized_by.map(OwnedFd::try_clone).transpose()?;
        let resized = watch_window_size()?;
        // The caller may have resized since the container's terminal was made.
        if let Some(terminal) = &sized_by {
            copy_window_size(terminal.as_fd(), master.as_fd());
        }
        let (stop_read, stop_write) = pipe2(OFlag::O_CLOEXEC)?;
        let streams = Streams {
            master,
            input: Some(input),
            output: Some(output),
            input_is_terminal: raw.is_some(),
            sized_by,
            resized,
            stop: stop_read,
        };
        let thread = std::thread::Builder::new().name("tty relay".into()).spawn(move || streams.run())?;
        Ok(Relay { thread: Some(thread), stop: Some(stop_write), raw })
    }

    /// Called once the container has ended: copies what its terminal still
    /// holds to the caller, stops the thread and puts the caller's terminal
    /// back as it was. A failure of the relay is printed; the run's exit
    /// status stays the command's.
    pub fn finish(mut self) {
        match self.stop_and_join() {
            Ok(()) => crate::trace::note("the container's terminal is drained; the relay has ended"),
            Err(err) => crate::errors::print(&anyhow::anyhow!("the relay of the container's terminal failed: {err}")),
        }
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        drop(self.stop.take());
        let ended = match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| Err(io::Error::other("the terminal relay panicked"))),
            None => Ok(()),
        };
        drop(self.raw.take());
        ended
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// What the relay thread owns.
struct Streams {
    master: OwnedFd,
    /// None once it has ended (end of file, or a terminal hung up).
    input: Option<OwnedFd>,
    /// None once writing to it failed: the container's output is then read
    /// and dropped, so that the container never blocks on a full terminal.
    output: Option<OwnedFd>,
    input_is_terminal: bool,
    sized_by: Option<OwnedFd>,
    resized: BorrowedFd<'static>,
    stop: OwnedFd,
}

const CHUNK: usize = 16 * 1024;

impl Streams {
    fn run(mut self) -> io::Result<()> {
        // Never block on the master: input waits in `pending` while the
        // container is not reading, so its output keeps flowing meanwhile.
        let flags = OFlag::from_bits_retain(fcntl(&self.master, FcntlArg::F_GETFL)?);
        fcntl(&self.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let mut pending: Vec<u8> = Vec::new();
        let mut last_sent = b'\n';
        // After the end of input that is not a terminal: whether the
        // container's terminal was in canonical mode when Ctrl-D was sent.
        let mut eof_sent_canonical: Option<bool> = None;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let (master, stop, resized, input) = {
                let mut wanted = PollFlags::POLLIN;
                if !pending.is_empty() {
                    wanted |= PollFlags::POLLOUT;
                }
                let mut fds = vec![
                    PollFd::new(self.master.as_fd(), wanted),
                    PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.resized, PollFlags::POLLIN),
                ];
                // Input is read only when the last of it has gone to the
                // container: a container that does not read holds it back.
                if let (Some(input), true) = (&self.input, pending.is_empty()) {
                    fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(Errno::EINTR) => continue,
                    Err(errno) => return Err(errno.into()),
                    Ok(_) => {}
                }
                let events = |index: usize| fds.get(index).and_then(PollFd::revents).unwrap_or(PollFlags::empty());
                (events(0), events(1), events(2), events(3))
            };
            if !stop.is_empty() {
                return self.drain(&mut buffer);
            }
            if !resized.is_empty() {
                while read(self.resized, &mut buffer).is_ok_and(|n| n > 0) {}
                if let Some(terminal) = &self.sized_by {
                    copy_window_size(terminal.as_fd(), self.master.as_fd());
                }
            }
            if master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match read(&self.master, &mut buffer) {
                    // Every process of the container has closed its terminal.
                    Ok(0) | Err(Errno::EIO) => return Ok(()),
                    Ok(n) => {
                        self.write_output(&buffer[..n]);
                        // A program that switched its terminal's mode since
                        // (a shell's line editor does, before its prompt)
                        // has not seen that Ctrl-D as one: send another.
                        if let Some(canonical) = eof_sent_canonical
                            && self.canonical() != Some(canonical)
                        {
                            eof_sent_canonical = self.canonical();
                            pending.extend(self.end_of_file(b'\n'));
                        }
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
            if master.contains(PollFlags::POLLOUT) && !pending.is_empty() {
                match write(&self.master, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(Errno::EIO) => pending.clear(),
                    Err(errno) => return Err(errno.into()),
                }
            }
            if input.is_empty() {
                continue;
            }
            let Some(from) = &self.input else { continue };
            match read(from, &mut buffer) {
                Ok(0) => {
                    self.input = None;
                    if !self.input_is_terminal {
                        eof_sent_canonical = self.canonical();
                        pending.extend(self.end_of_file(last_sent));
                    }
                }
                Ok(n) => {
                    pending.extend_from_slice(&buffer[..n]);
                    last_sent = buffer[n - 1];
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                // A terminal that hung up (EIO), or anything else: no more input.
                Err(_) => self.input = None,
            }
        }
    }

    /// What tells the container its input has ended, when the input is not a
    /// terminal (a pipe, a file, /dev/null) and has reached its end. A
    /// terminal cannot be half-closed, so the runtime types the end-of-file
    /// character (VEOF, Ctrl-D), as `script` does. In canonical mode the
    /// terminal turns it into a read of 0 bytes (twice after an unfinished
    /// line, whose first Ctrl-D only ends the line); a program that reads its
    /// terminal raw, like a shell's line editor, takes Ctrl-D on an empty
    /// line as the end.
    fn end_of_file(&self, last_sent: u8) -> Vec<u8> {
        match tcgetattr(&self.master) {
            Ok(modes) => {
                let eof = modes.control_chars[SpecialCharacterIndices::VEOF as usize];
                let canonical = modes.local_flags.contains(LocalFlags::ICANON);
                if canonical && last_sent != b'\n' { vec![eof, eof] } else { vec![eof] }
            }
            Err(_) => Vec::new(),
        }
    }

    /// Whether the container's terminal is in canonical mode (its termios,
    /// read through the master, are the slave's).
    fn canonical(&self) -> Option<bool> {
        tcgetattr(&self.master).ok().map(|modes| modes.local_flags.contains(LocalFlags::ICANON))
    }

    /// The container has ended: what its terminal still holds goes to the
    /// caller. Its processes are gone, so the master reads what is left, then
    /// EIO; EAGAIN means that something outside the container still has the
    /// slave open, and the relay does not wait for it.
    fn drain(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        loop {
            match read(&self.master, buffer) {
                Ok(0) | Err(Errno::EIO | Errno::EAGAIN) => return Ok(()),
                Ok(n) => self.write_output(&buffer[..n]),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Writes all of `data` to the output; waits when the output is a
    /// non-blocking file that is full. On an error (a closed pipe, a terminal
    /// that hung up) the output is dropped from then on.
    fn write_output(&mut self, mut data: &[u8]) {
        let Some(output) = &self.output else { return };
        while !data.is_empty() {
            match write(output, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(output.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::NONE);
                }
                Err(_) => {
                    self.output = None;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::pty::openpty;
    use nix::unistd::pipe;

    fn size(rows: u16, cols: u16) -> Winsize {
        Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
    }

    /// Reads `from` until `wanted` bytes came, or fails after a few seconds.
    fn read_exactly(from: &OwnedFd, wanted: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < wanted {
            assert!(std::time::Instant::now() < deadline, "only {got:?} arrived");
            let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(100u16)).unwrap() > 0 {
                let mut buffer = [0u8; 4096];
                let n = read(from, &mut buffer).unwrap();
                got.extend_from_slice(&buffer[..n]);
            }
        }
        got
    }

    #[test]
    fn raw_mode_is_undone_when_dropped() {
        let pair = openpty(None, None).unwrap();
        let before = tcgetattr(&pair.slave).unwrap();
        assert!(before.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
        let raw = RawMode::enable(pair.slave.as_fd()).unwrap().expect("a pty slave is a terminal");
        let during = tcgetattr(&pair.slave).unwrap();
        assert!(!during.local_flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
        drop(raw);
        assert_eq!(tcgetattr(&pair.slave).unwrap(), before);
    }

    #[test]
    fn raw_mode_leaves_a_pipe_alone() {
        let (read_end, _write_end) = pipe().unwrap();
        assert!(RawMode::enable(read_end.as_fd()).unwrap().is_none());
    }

    #[test]
    fn the_relay_copies_both_ways_then_drains_and_ends() {
        // The container's terminal, in raw mode so that bytes pass as they are.
        let container = openpty(None, None).unwrap();
        let mut modes = tcgetattr(&container.slave).unwrap();
        cfmakeraw(&mut modes);
        tcsetattr(&container.slave, SetArg::TCSANOW, &modes).unwrap();
        let (input, typing) = pipe().unwrap();
        let (reading, output) = pipe().unwrap();
        let mut relay = Relay::between(container.master, input, output).unwrap();
        write(&typing, b"typed").unwrap();
        assert_eq!(read_exactly(&container.slave, 5), b"typed");
        write(&container.slave, b"printed").unwrap();
        assert_eq!(read_exactly(&reading, 7), b"printed");
        // More than fits in one read, written just before the container ends:
        // all of it arrives.
        let last = vec![b'z'; 3 * CHUNK];
        let collect = std::thread::spawn(move || read_exactly(&reading, 3 * CHUNK));
        let mut rest = &last[..];
        while !rest.is_empty() {
            match write(&container.slave, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(errno) => panic!("{errno}"),
            }
        }
        drop(container.slave);
        relay.stop_and_join().unwrap();
        assert_eq!(collect.join().unwrap(), last);
    }

    #[test]
    fn the_end_of_piped_input_is_a_ctrl_d() {
        // In canonical mode, the default, the slave reads one line, then 0 bytes.
        let container = openpty(None, None).unwrap();
        let (input, typing) = pipe().unwrap();
        let (_reading, output) = pipe().unwrap();
        let mut relay = Relay::between(container.master, input, output).unwrap();
        write(&typing, b"line\n").unwrap();
        drop(typing);
        assert_eq!(read_exactly(&container.slave, 5), b"line\n");
        let mut buffer = [0u8; 16];
        assert_eq!(read(&container.slave, &mut buffer), Ok(0), "no end of file after the input's end");
        drop(container.slave);
        relay.stop_and_join().unwrap();
    }

    #[test]
    fn a_program_that_reads_raw_gets_its_own_ctrl_d() {
        // The input ends before the program has switched its terminal to raw
        // mode: the first Ctrl-D was a canonical end of file, which raw mode
        // turns into a NUL byte. Its first output (a prompt) brings another.
        let container = openpty(None, None).unwrap();
        let (input, typing) = pipe().unwrap();
        let (_reading, output) = pipe().unwrap();
        let mut relay = Relay::between(container.master, input, output).unwrap();
        drop(typing);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut fds = [PollFd::new(container.slave.as_fd(), PollFlags::POLLIN)];
        while poll(&mut fds, PollTimeout::ZERO).unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "no Ctrl-D arrived");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut modes = tcgetattr(&container.slave).unwrap();
        cfmakeraw(&mut modes);
        tcsetattr(&container.slave, SetArg::TCSANOW, &modes).unwrap();
        write(&container.slave, b"$ ").unwrap();
        assert_eq!(read_exactly(&container.slave, 2), [0, 4]);
        drop(container.slave);
        relay.stop_and_join().unwrap();
    }

    #[test]
    fn the_containers_terminal_gets_the_callers_size() {
        let caller = openpty(&size(33, 101), None).unwrap();
        let container = openpty(&size(24, 80), None).unwrap();
        let (_reading, output) = pipe().unwrap();
        let mut relay = Relay::between(container.master, caller.slave.try_clone().unwrap(), output).unwrap();
        let got = get_window_size(container.slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 101));
        // The caller's terminal is raw while the relay runs, and restored after.
        assert!(!tcgetattr(&caller.slave).unwrap().local_flags.contains(LocalFlags::ICANON));
        drop(container.slave);
        relay.stop_and_join().unwrap();
        assert!(tcgetattr(&caller.slave).unwrap().local_flags.contains(LocalFlags::ICANON));
    }
}
