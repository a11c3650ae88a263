import SystemSeccomp

extension Sandbox {
    /// What the commands and the FUSE server need after start-up: each syscall's name (for the
    /// tests and messages) and its number for the architecture this is compiled for
    /// (asm/unistd.h through sys/syscall.h), so that entering the sandbox resolves nothing at
    /// run time. Resolving the ~160 names through libseccomp cost about 0.2 ms per process, a few
    /// percent of a `cat`; SeccompFilterTests checks every number against libseccomp's resolver.
    static let allowedSyscalls: [(name: String, number: Int32)] = common + legacy

    /// What a process with a Ceph RBD drive needs besides (`RBDSource.anyOpened`): librados
    /// connects to each OSD when it first sends it a request (an image's objects are spread
    /// over all the OSDs of its pool) and again to a monitor or OSD after a reset, from its own
    /// messenger threads, so new TCP sockets are made after the sandbox is entered. Opening
    /// host paths stays refused (Landlock), and so does listening (no bind, listen or accept).
    static let networkClient: [(name: String, number: Int32)] = [
        ("socket", SYS_socket), ("connect", SYS_connect), ("setsockopt", SYS_setsockopt),
        ("getsockname", SYS_getsockname), ("getpeername", SYS_getpeername),
    ]

    private static let common: [(name: String, number: Int32)] = [
        // descriptors and file data
        ("read", SYS_read), ("write", SYS_write), ("readv", SYS_readv), ("writev", SYS_writev),
        ("pread64", SYS_pread64), ("pwrite64", SYS_pwrite64), ("preadv", SYS_preadv), ("pwritev", SYS_pwritev),
        ("preadv2", SYS_preadv2), ("pwritev2", SYS_pwritev2),
        ("lseek", SYS_lseek), ("close", SYS_close), ("close_range", SYS_close_range), ("dup", SYS_dup),
        ("dup3", SYS_dup3), ("fcntl", SYS_fcntl), ("ioctl", SYS_ioctl), ("pipe2", SYS_pipe2),
        ("splice", SYS_splice), ("vmsplice", SYS_vmsplice), ("tee", SYS_tee), ("sendfile", SYS_sendfile),
        ("copy_file_range", SYS_copy_file_range), ("fsync", SYS_fsync), ("fdatasync", SYS_fdatasync),
        ("sync_file_range", SYS_sync_file_range),
        ("ftruncate", SYS_ftruncate), ("fallocate", SYS_fallocate), ("fadvise64", SYS_fadvise64),
        ("readahead", SYS_readahead), ("flock", SYS_flock),
        ("ppoll", SYS_ppoll), ("pselect6", SYS_pselect6), ("epoll_create1", SYS_epoll_create1),
        ("epoll_ctl", SYS_epoll_ctl), ("epoll_pwait", SYS_epoll_pwait),
        ("eventfd2", SYS_eventfd2), ("timerfd_create", SYS_timerfd_create),
        ("timerfd_settime", SYS_timerfd_settime), ("timerfd_gettime", SYS_timerfd_gettime),
        // traffic on sockets already connected (an NBD drive, Block/NBD): no socket, connect
        // or bind is allowed, so nothing new can be reached
        ("sendto", SYS_sendto), ("recvfrom", SYS_recvfrom), ("sendmsg", SYS_sendmsg), ("recvmsg", SYS_recvmsg),
        ("shutdown", SYS_shutdown), ("getsockopt", SYS_getsockopt),
        // thread scheduling queries; a socketpair is local only
        ("setpriority", SYS_setpriority), ("getpriority", SYS_getpriority), ("socketpair", SYS_socketpair),
        ("sched_setaffinity", SYS_sched_setaffinity), ("sched_getparam", SYS_sched_getparam),
        ("sched_getscheduler", SYS_sched_getscheduler),
        // paths (Landlock decides which ones may be opened or made)
        ("openat", SYS_openat), ("openat2", SYS_openat2), ("fstat", SYS_fstat), ("newfstatat", SYS_newfstatat),
        ("statx", SYS_statx), ("statfs", SYS_statfs), ("fstatfs", SYS_fstatfs),
        ("getdents64", SYS_getdents64), ("getcwd", SYS_getcwd), ("readlinkat", SYS_readlinkat),
        ("faccessat", SYS_faccessat), ("faccessat2", SYS_faccessat2),
        ("mkdirat", SYS_mkdirat), ("symlinkat", SYS_symlinkat), ("linkat", SYS_linkat),
        ("mknodat", SYS_mknodat),
        ("unlinkat", SYS_unlinkat), ("renameat", SYS_renameat), ("renameat2", SYS_renameat2),
        ("fchmod", SYS_fchmod), ("fchmodat", SYS_fchmodat), ("fchown", SYS_fchown), ("fchownat", SYS_fchownat),
        ("utimensat", SYS_utimensat), ("umask", SYS_umask),
        ("setxattr", SYS_setxattr), ("lsetxattr", SYS_lsetxattr), ("fsetxattr", SYS_fsetxattr),
        ("getxattr", SYS_getxattr), ("lgetxattr", SYS_lgetxattr), ("fgetxattr", SYS_fgetxattr),
        ("listxattr", SYS_listxattr), ("llistxattr", SYS_llistxattr), ("flistxattr", SYS_flistxattr),
        ("removexattr", SYS_removexattr), ("lremovexattr", SYS_lremovexattr),
        ("fremovexattr", SYS_fremovexattr),
        // memory
        ("mmap", SYS_mmap), ("munmap", SYS_munmap), ("mprotect", SYS_mprotect), ("mremap", SYS_mremap),
        ("madvise", SYS_madvise), ("brk", SYS_brk), ("msync", SYS_msync), ("mlock", SYS_mlock),
        ("munlock", SYS_munlock), ("membarrier", SYS_membarrier),
        // an anonymous memory file: a registry hive's bytes for hivex, which opens hives by
        // name only (Inspect/Hive.swift opens it as /proc/self/fd/N; Landlock lets that open
        // through because memfds live on an internal, never-mounted filesystem)
        ("memfd_create", SYS_memfd_create),
        // threads, signals, time, identity
        ("futex", SYS_futex), ("futex_waitv", SYS_futex_waitv), ("set_robust_list", SYS_set_robust_list),
        ("get_robust_list", SYS_get_robust_list), ("rseq", SYS_rseq), ("clone", SYS_clone),
        ("clone3", SYS_clone3),
        ("exit", SYS_exit), ("exit_group", SYS_exit_group), ("wait4", SYS_wait4), ("waitid", SYS_waitid),
        ("kill", SYS_kill), ("tgkill", SYS_tgkill), ("tkill", SYS_tkill),
        ("rt_sigaction", SYS_rt_sigaction), ("rt_sigprocmask", SYS_rt_sigprocmask),
        ("rt_sigreturn", SYS_rt_sigreturn), ("rt_sigtimedwait", SYS_rt_sigtimedwait),
        ("rt_sigqueueinfo", SYS_rt_sigqueueinfo), ("sigaltstack", SYS_sigaltstack),
        ("restart_syscall", SYS_restart_syscall), ("nanosleep", SYS_nanosleep),
        ("clock_nanosleep", SYS_clock_nanosleep), ("clock_gettime", SYS_clock_gettime),
        ("clock_getres", SYS_clock_getres), ("gettimeofday", SYS_gettimeofday),
        ("getpid", SYS_getpid), ("gettid", SYS_gettid), ("getppid", SYS_getppid), ("getuid", SYS_getuid),
        ("geteuid", SYS_geteuid), ("getgid", SYS_getgid), ("getegid", SYS_getegid),
        ("getgroups", SYS_getgroups), ("getresuid", SYS_getresuid), ("getresgid", SYS_getresgid),
        ("getrandom", SYS_getrandom), ("getrlimit", SYS_getrlimit), ("prlimit64", SYS_prlimit64),
        ("getrusage", SYS_getrusage), ("times", SYS_times), ("sched_getaffinity", SYS_sched_getaffinity),
        ("sched_yield", SYS_sched_yield),
        ("uname", SYS_uname), ("sysinfo", SYS_sysinfo), ("prctl", SYS_prctl),
        ("set_tid_address", SYS_set_tid_address),
    ]

    /// The older path-taking and legacy calls x86-64 still has and glibc or Swift's runtime may
    /// use there; the generic syscall table (arm64, riscv64) has only their *at and p* forms,
    /// which `common` lists.
    #if arch(x86_64)
    private static let legacy: [(name: String, number: Int32)] = [
        ("dup2", SYS_dup2), ("pipe", SYS_pipe), ("poll", SYS_poll), ("select", SYS_select),
        ("epoll_wait", SYS_epoll_wait), ("open", SYS_open), ("stat", SYS_stat), ("lstat", SYS_lstat),
        ("readlink", SYS_readlink), ("access", SYS_access), ("mkdir", SYS_mkdir), ("symlink", SYS_symlink),
        ("link", SYS_link), ("mknod", SYS_mknod), ("unlink", SYS_unlink), ("rmdir", SYS_rmdir),
        ("rename", SYS_rename), ("chmod", SYS_chmod), ("chown", SYS_chown), ("lchown", SYS_lchown),
        ("time", SYS_time), ("arch_prctl", SYS_arch_prctl),
    ]
    #else
    private static let legacy: [(name: String, number: Int32)] = []
    #endif
}
