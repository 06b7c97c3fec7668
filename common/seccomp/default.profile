# Docker's default seccomp profile: the system calls a container may make.
#
# Written for this workshop from the rules of moby's profiles/seccomp
# (default_linux.go, v0.2.x), in a format of our own. common/src/seccomp.rs
# reads it, keeps the rules that apply to the container's capabilities, and
# compiles them to BPF for the running architecture (x86_64 or aarch64).
#
# One rule per line; `#` starts a comment.
#
#   default errno=EPERM               what every call no rule allows gets
#   allow NAME...                     these calls are allowed
#   allow NAME... if CAP_X            ... only when the container keeps CAP_X
#   allow NAME... unless CAP_X        ... only when it does not
#   allow NAME where TEST             ... only when an argument passes TEST
#   errno=ENOSYS NAME... unless CAP_X these calls fail with ENOSYS instead
#
# TEST is `argN OP VALUE` or `argN & MASK == VALUE` (N counts from 0; OP is
# ==, !=, <, <=, >, >=). `argN:u32` compares only the low 32 bits, as the
# kernel reads an `int` argument: `socket(0x100000028, …)` is AF_VSOCK too.
# Several `where` rules for one call: any of them allows it.
#
# A name the running architecture does not have (`open` on aarch64,
# `arch_prctl` on aarch64) is skipped, as libseccomp skips it for Docker.
# Docker's list also names the 32-bit calls (chown32, fcntl64, socketcall,
# the *_time64 family, …); they are left out here because this filter admits
# only the native 64-bit ABI: a 32-bit call is killed, where Docker allows
# i386 and x32 programs too.

default errno=EPERM

# --- Files: open, read, write, and find them by name ---------------------------------
allow open openat openat2 creat close close_range
allow read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek
allow dup dup2 dup3 fcntl flock ioctl
allow stat lstat fstat newfstatat statx statfs fstatfs statmount listmount cachestat
allow access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir
allow mkdir mkdirat mknod mknodat rmdir unlink unlinkat link linkat symlink symlinkat
allow rename renameat renameat2
allow chmod fchmod fchmodat fchmodat2 chown fchown fchownat lchown umask
allow truncate ftruncate fallocate fadvise64 readahead
allow fsync fdatasync sync syncfs sync_file_range
allow utime utimes utimensat futimesat
allow copy_file_range sendfile splice tee vmsplice
# Its partner open_by_handle_at opens any file of a filesystem by number,
# past every directory permission (the 2014 "shocker" escape): see below.
allow name_to_handle_at

# --- Extended attributes ---------------------------------------------------------------
allow getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
allow listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat

# --- Waiting: on descriptors, for file changes, through pipes --------------------------
allow select pselect6 poll ppoll
allow epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2
allow eventfd eventfd2 signalfd signalfd4 timerfd_create timerfd_gettime timerfd_settime pipe pipe2
allow inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
# Asynchronous I/O. Not io_uring_setup, io_uring_enter, io_uring_register:
# Docker stopped allowing them in 2023, after a string of kernel bugs that
# io_uring made reachable from any process.
allow io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents

# --- Memory ------------------------------------------------------------------------------
allow brk mmap munmap mremap mprotect madvise mincore msync remap_file_pages
allow mlock mlock2 mlockall munlock munlockall
allow memfd_create memfd_secret membarrier pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal

# --- Processes and threads ---------------------------------------------------------------
allow fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill
allow getpid getppid gettid getpgid setpgid getpgrp getsid setsid
allow set_tid_address set_robust_list get_robust_list rseq restart_syscall
allow futex futex_waitv futex_wake futex_wait futex_requeue
allow prctl arch_prctl set_thread_area get_thread_area modify_ldt uretprobe
allow pidfd_open pidfd_send_signal process_mrelease
# A process may always restrict itself further: with a filter of its own
# (it can add filters, never remove ours) or a Landlock ruleset.
allow seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
# Tracing its own children. Docker allows these only from Linux 4.8, where
# seccomp runs again after a tracer changed a call; this workshop needs 5.2+.
allow ptrace process_vm_readv process_vm_writev

# --- Signals -------------------------------------------------------------------------------
allow rt_sigaction rt_sigprocmask rt_sigpending rt_sigreturn rt_sigsuspend rt_sigtimedwait
allow rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack pause alarm

# --- Users, groups, capabilities (the kernel checks CAP_SETUID and the rest) ----------
allow getuid geteuid getgid getegid getresuid getresgid getgroups
allow setuid setgid setreuid setregid setresuid setresgid setfsuid setfsgid setgroups
allow capget capset

# --- Limits, priorities, scheduling ------------------------------------------------------
allow getrlimit setrlimit prlimit64 getrusage getpriority setpriority ioprio_get ioprio_set
allow sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
allow sched_getparam sched_setparam sched_getscheduler sched_setscheduler
allow sched_get_priority_max sched_get_priority_min sched_rr_get_interval getcpu

# --- Time (reading it; setting the clock is below, with CAP_SYS_TIME) -------------------
allow time gettimeofday clock_gettime clock_getres clock_nanosleep nanosleep times
allow adjtimex clock_adjtime getitimer setitimer
allow timer_create timer_delete timer_gettime timer_settime timer_getoverrun

# --- About the system ----------------------------------------------------------------------
allow uname sysinfo getrandom

# --- Sockets -------------------------------------------------------------------------------
allow socketpair bind listen accept accept4 connect getsockname getpeername
allow getsockopt setsockopt sendto sendmsg sendmmsg recvfrom recvmsg recvmmsg shutdown
# Any address family but AF_ALG (38: the kernel's crypto API, a frequent
# source of kernel bugs) and AF_VSOCK (40: sockets to the hypervisor and to
# other virtual machines, which a container has no business reaching).
allow socket where arg0:u32 < 38
allow socket where arg0:u32 == 39
allow socket where arg0:u32 > 40

# --- System V and POSIX IPC (the container has an IPC namespace of its own) -----------
allow msgget msgsnd msgrcv msgctl semget semop semtimedop semctl shmget shmat shmdt shmctl
allow mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr

# --- personality(2): only the harmless execution domains ---------------------------------
# PER_LINUX, UNAME26 (a 2.6 kernel version for old programs), ADDR_NO_RANDOMIZE
# (for debuggers), both, and 0xffffffff (which only asks for the current one).
allow personality where arg0:u32 == 0x0
allow personality where arg0:u32 == 0x8
allow personality where arg0:u32 == 0x20000
allow personality where arg0:u32 == 0x20008
allow personality where arg0:u32 == 0xffffffff

# --- New processes: never new namespaces without CAP_SYS_ADMIN -------------------------
# clone(2) without any CLONE_NEW* flag: NEWNS 0x20000, NEWCGROUP 0x2000000,
# NEWUTS 0x4000000, NEWIPC 0x8000000, NEWUSER 0x10000000, NEWPID 0x20000000,
# NEWNET 0x40000000. A nested user namespace would give its creator every
# capability again, over a kernel surface made for root only.
allow clone where arg0 & 0x7e020000 == 0 unless CAP_SYS_ADMIN
# clone3(2) passes its flags in memory, which a filter cannot read: ENOSYS
# makes glibc fall back to clone(2), which the rule above can check.
errno=ENOSYS clone3 unless CAP_SYS_ADMIN

# --- What only a capability Docker does not grant by default makes safe -----------------
# (`--cap-add NAME` adds the capability and these rules with it, as in Docker.)
allow open_by_handle_at if CAP_DAC_READ_SEARCH
# Namespaces, mounts, the kernel log, eBPF, performance counters, quotas,
# hostnames: all of them reach kernel code written for the host's root.
allow unshare setns clone clone3 if CAP_SYS_ADMIN
allow mount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick if CAP_SYS_ADMIN
allow bpf perf_event_open fanotify_init lookup_dcookie quotactl quotactl_fd if CAP_SYS_ADMIN
allow sethostname setdomainname syslog if CAP_SYS_ADMIN
allow lsm_get_self_attr lsm_set_self_attr lsm_list_modules if CAP_SYS_ADMIN
allow reboot if CAP_SYS_BOOT
allow chroot if CAP_SYS_CHROOT
allow init_module finit_module delete_module if CAP_SYS_MODULE
allow acct if CAP_SYS_PACCT
allow kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace if CAP_SYS_PTRACE
allow iopl ioperm if CAP_SYS_RAWIO
allow settimeofday clock_settime if CAP_SYS_TIME
allow vhangup if CAP_SYS_TTY_CONFIG
allow get_mempolicy set_mempolicy set_mempolicy_home_node mbind if CAP_SYS_NICE
allow syslog if CAP_SYSLOG
allow bpf if CAP_BPF
allow perf_event_open if CAP_PERFMON

# Never allowed, whatever the capabilities (no rule names them): keyctl,
# add_key and request_key (the kernel keyring is not namespaced), kexec_load
# and kexec_file_load, pivot_root, swapon and swapoff, userfaultfd,
# io_uring_*, move_pages and migrate_pages, _sysctl, uselib, ustat, sysfs,
# nfsservctl, and the old calls no kernel implements any more.
