#!/usr/bin/env python3
"""One script of system calls and shell idioms, run in a directory of the filesystem under test.

It prints one line per step: the call, its result or errno, and what the file looks like
afterwards (type, mode, links, owner, size, blocks, a digest of the bytes, and which of mtime
and ctime moved). The same script runs on an imagemount --rw mount and on the kernel's ext4
(or another filesystem) over a loop device of an identical image; the test compares the two
outputs line by line, so every return value, errno and resulting byte must agree.

Usage: posix-conformance.py DIR  (as root; DIR is an empty directory on the filesystem under
test; parts run as the unprivileged users 1000 and 1001, so the filesystem must let them in:
an imagemount mount needs -o allow_other).

Nothing here depends on inode numbers, absolute times, directory sizes or readdir order, which
legitimately differ between two filesystems with the same contents.
"""
import ctypes
import ctypes.util
import errno
import hashlib
import mmap
import os
import stat
import subprocess
import sys
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_ZERO_RANGE = 0x10
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
# Some kernels' coarse clocks tick every few ms: wait longer than a tick between a step and
# the stat that checks whether the step moved a time.
TICK = 0.012

ROOT = os.path.abspath(sys.argv[1])
out = sys.stdout
seen_times = {}


def emit(line):
    out.write(line + "\n")
    out.flush()


def errname(e):
    return errno.errorcode.get(e, str(e))


def call(label, fn, *args, **kwargs):
    """Runs fn(*args); prints `label -> result` or `label -> ERRNO`; returns the result or None."""
    time.sleep(TICK)
    try:
        result = fn(*args, **kwargs)
    except OSError as e:
        emit(f"{label} -> {errname(e.errno)}")
        return None
    shown = result
    if isinstance(result, bytes):
        shown = "bytes:" + (result.hex() if len(result) <= 32 else f"{len(result)}:{hashlib.sha256(result).hexdigest()[:16]}")
    elif isinstance(result, int) and label.startswith("open"):
        shown = "fd"
    elif isinstance(result, os.stat_result):
        shown = "stat"
    emit(f"{label} -> {shown if shown is not None else 'ok'}")
    return result


def cfun(name, fn):
    """A ctypes call that raises OSError like os.* functions do."""
    def run(*args):
        rc = fn(*args)
        if rc < 0:
            raise OSError(ctypes.get_errno(), name)
        return rc
    return run


fallocate = cfun("fallocate", libc.fallocate)


def renameat2(a, b, flags):
    return cfun("renameat2", libc.renameat2)(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)


def digest(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return errname(e.errno)
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()[:16]}"


def describe(path, follow=False, key=None, allocated=None):
    """The state of `path`: everything two filesystems with the same contents must agree on."""
    time.sleep(TICK)
    key = key or path
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        emit(f"  {rel(path)}: {errname(e.errno)}")
        return
    moved = []
    previous = seen_times.get(key)
    if previous is not None:
        if st.st_mtime_ns != previous[0]:
            moved.append("m")
        if st.st_ctime_ns != previous[1]:
            moved.append("c")
    seen_times[key] = (st.st_mtime_ns, st.st_ctime_ns)
    kind = stat.S_IFMT(st.st_mode)
    line = f"  {rel(path)}: {oct(st.st_mode)} n={st.st_nlink} {st.st_uid}:{st.st_gid}"
    if kind == stat.S_IFREG and allocated is not None:
        # Where the allocator's choices may differ (fragmented free space: an extent tree
        # block or not), the count must cover the data and at most two tree blocks.
        fits = allocated <= st.st_blocks * 512 <= allocated + 2 * 4096
        line += f" size={st.st_size} blocks={'data+tree' if fits else st.st_blocks} data={digest(path)}"
    elif kind == stat.S_IFREG:
        line += f" size={st.st_size} blocks={st.st_blocks} data={digest(path)}"
    elif kind == stat.S_IFLNK:
        line += f" -> {os.readlink(path)}"
    line += f" times={''.join(moved) or '-'}"
    emit(line)


def describe_fd(fd, label):
    time.sleep(TICK)
    st = os.fstat(fd)
    emit(f"  fd {label}: {oct(st.st_mode)} n={st.st_nlink} size={st.st_size} blocks={st.st_blocks}")


def rel(path):
    return os.path.relpath(path, ROOT)


def p(*names):
    return os.path.join(ROOT, *names)


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def sh(label, command, cwd=None):
    time.sleep(TICK)
    r = subprocess.run(["bash", "-c", command], cwd=cwd or ROOT, capture_output=True)
    emit(f"{label} -> exit {r.returncode}")


def section(name):
    emit(f"== {name}")


def open_flags():
    section("open flags")
    f = p("hostname")
    call("open O_CREAT|O_EXCL new", lambda: os.close(os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)))
    call("open O_CREAT|O_EXCL existing", lambda: os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    describe(f)
    write_file(f, b"overlay-vm\n")
    describe(f)
    call("open O_CREAT existing keeps data", lambda: os.close(os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)))
    describe(f)

    def trunc_write():
        fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"web01\n")
        os.close(fd)
    call("open O_WRONLY|O_TRUNC + write shorter", trunc_write)
    describe(f)
    call("open O_RDWR|O_TRUNC on data", lambda: os.close(os.open(f, os.O_RDWR | os.O_TRUNC)))
    describe(f)
    call("open O_WRONLY|O_TRUNC on empty file", lambda: os.close(os.open(f, os.O_WRONLY | os.O_TRUNC)))
    describe(f)
    write_file(f, b"0123456789")
    describe(f)
    call("open O_RDONLY|O_TRUNC (Linux truncates)", lambda: os.close(os.open(f, os.O_RDONLY | os.O_TRUNC)))
    describe(f)
    call("open O_CREAT|O_TRUNC existing", lambda: os.close(os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)))
    describe(f)

    a = p("append")
    write_file(a, b"first\n")
    describe(a)
    def append():
        fd = os.open(a, os.O_WRONLY | os.O_APPEND)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"second\n")
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        os.pwrite(fd, b"third\n", 0)  # Linux: pwrite on O_APPEND appends
        os.close(fd)
        return pos
    call("O_APPEND write after lseek(0), pwrite(0)", append)
    describe(a)
    call("open O_APPEND|O_TRUNC", lambda: (lambda fd: (os.write(fd, b"x"), os.close(fd)))(os.open(a, os.O_WRONLY | os.O_APPEND | os.O_TRUNC)))
    describe(a)

    d = p("direct")
    def direct():
        buf = mmap.mmap(-1, 8192)
        buf.write(bytes(range(256)) * 32)
        fd = os.open(d, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        n = os.writev(fd, [memoryview(buf)[:8192]])
        back = mmap.mmap(-1, 4096)
        m = os.preadv(fd, [back], 4096)
        os.close(fd)
        return (n, m, hashlib.sha256(back[:]).hexdigest()[:16])
    call("O_DIRECT aligned write 8192, read 4096 at 4096", direct)
    describe(d)
    def direct_unaligned(offset, length):
        buf = mmap.mmap(-1, 8192)
        fd = os.open(d, os.O_RDWR | os.O_DIRECT)
        try:
            return os.pwritev(fd, [memoryview(buf)[:length]], offset)
        finally:
            os.close(fd)
    call("O_DIRECT write at offset 100", direct_unaligned, 100, 4096)
    call("O_DIRECT write of 1000 bytes", direct_unaligned, 0, 1000)
    call("O_DIRECT write at 512 of 512", direct_unaligned, 512, 512)
    describe(d)

    for name, flag in (("O_SYNC", os.O_SYNC), ("O_DSYNC", os.O_DSYNC)):
        s = p(name.lower())
        def sync_write():
            fd = os.open(s, os.O_WRONLY | os.O_CREAT | flag, 0o640)
            n = os.write(fd, b"durable\n" * 1000)
            os.close(fd)
            return n
        call(f"{name} write", sync_write)
        describe(s)

    os.symlink("hostname", p("link"))
    call("open O_NOFOLLOW on symlink", lambda: os.open(p("link"), os.O_RDONLY | os.O_NOFOLLOW))
    call("open O_DIRECTORY on file", lambda: os.open(f, os.O_RDONLY | os.O_DIRECTORY))
    os.mkdir(p("dir"))
    call("open O_WRONLY on directory", lambda: os.open(p("dir"), os.O_WRONLY))
    call("open O_CREAT on directory", lambda: os.open(p("dir"), os.O_WRONLY | os.O_CREAT, 0o644))
    call("open missing without O_CREAT", lambda: os.open(p("missing"), os.O_RDONLY))
    call("open O_CREAT in missing dir", lambda: os.open(p("nodir", "f"), os.O_WRONLY | os.O_CREAT, 0o644))
    call("open through a file", lambda: os.open(p("hostname", "x"), os.O_RDONLY))
    call("open name too long", lambda: os.open(p("n" * 256), os.O_WRONLY | os.O_CREAT, 0o644))
    call("open name of 255", lambda: os.close(os.open(p("n" * 255), os.O_WRONLY | os.O_CREAT, 0o644)))
    call("O_TMPFILE is left to a separate check", lambda: None)


def overwrites():
    section("overwrites, shorter and longer")
    t = p("ow")
    os.mkdir(t)
    long_text = b"".join(b"line %04d of a longer file\n" % i for i in range(400))
    write_file(os.path.join(t, "long"), long_text)
    write_file(os.path.join(t, "short"), b"short\n")
    describe(os.path.join(t, "long"))
    describe(os.path.join(t, "short"))
    sh("echo web01 > long", "echo web01 > ow/long")
    describe(os.path.join(t, "long"))
    write_file(os.path.join(t, "long"), long_text)
    sh("cp short over long", "cp ow/short ow/long")
    describe(os.path.join(t, "long"))
    sh("cp long over short", f"printf '%s' {long_text.decode()!r} > ow/src && cp ow/src ow/short")
    describe(os.path.join(t, "short"))
    sh("sed -i shorter", "sed -i 's/line/L/' ow/short")
    describe(os.path.join(t, "short"))
    sh("sed -i longer", "sed -i 's/L/a much longer line/' ow/short")
    describe(os.path.join(t, "short"))
    sh("dd conv=notrunc in the middle", "printf XYZ | dd of=ow/long bs=1 seek=2 conv=notrunc status=none")
    describe(os.path.join(t, "long"))
    sh("dd without notrunc", "printf XYZ | dd of=ow/src bs=1 seek=5 status=none")
    describe(os.path.join(t, "src"))
    sh(">> append", "echo more >> ow/long && echo more >> ow/long")
    describe(os.path.join(t, "long"))
    sh("editor: write temp + rename", "printf 'edited\\n' > ow/.long.tmp && mv -f ow/.long.tmp ow/long")
    describe(os.path.join(t, "long"))
    def py_write():
        with open(os.path.join(t, "src"), "w") as f:
            f.write("python\n")
    call("python open(p,'w') over longer", py_write)
    describe(os.path.join(t, "src"))
    def py_rplus():
        with open(os.path.join(t, "src"), "r+") as f:
            f.seek(2)
            f.write("T")
    call("python open(p,'r+') patch", py_rplus)
    describe(os.path.join(t, "src"))


def sizes():
    section("truncate and writes past EOF")
    f = p("sizes")
    write_file(f, b"a" * 10000)
    describe(f)
    call("truncate down 100", os.truncate, f, 100)
    describe(f)
    call("truncate same size 100", os.truncate, f, 100)
    describe(f)
    call("truncate up 1000000", os.truncate, f, 1000000)
    describe(f)
    fd = os.open(f, os.O_RDWR)
    call("ftruncate same size", os.ftruncate, fd, 1000000)
    describe(f)
    call("ftruncate down 4097", os.ftruncate, fd, 4097)
    describe(f)
    call("read tail after truncate", os.pread, fd, 10, 4090)
    call("ftruncate negative", os.ftruncate, fd, -1)
    call("pwrite past EOF (hole)", os.pwrite, fd, b"end", 5 * 1024 * 1024)
    describe(f)
    call("read inside hole", os.pread, fd, 16, 3 * 1024 * 1024)
    call("read at EOF", os.pread, fd, 16, 5 * 1024 * 1024 + 3)
    call("lseek SEEK_DATA from 8192", os.lseek, fd, 8192, os.SEEK_DATA)
    call("lseek SEEK_HOLE from 0", os.lseek, fd, 0, os.SEEK_HOLE)
    call("lseek SEEK_DATA past EOF", os.lseek, fd, 6 * 1024 * 1024, os.SEEK_DATA)
    os.close(fd)
    call("truncate directory", os.truncate, p("dir"), 0)
    call("truncate missing", os.truncate, p("nothing"), 0)
    call("truncate beyond ext4's limit", os.truncate, f, 1 << 45)


def mmaps():
    section("mmap writes")
    f = p("mapped")
    write_file(f, b"\0" * 20000)
    describe(f)
    def mapwrite():
        fd = os.open(f, os.O_RDWR)
        m = mmap.mmap(fd, 20000)
        m[100:110] = b"0123456789"
        m[16384:16390] = b"mapped"
        m.flush()
        m.close()
        os.close(fd)
    call("mmap write + msync", mapwrite)
    describe(f)
    def mapgrow():
        fd = os.open(f, os.O_RDWR)
        os.ftruncate(fd, 40000)
        m = mmap.mmap(fd, 40000)
        m[39990:40000] = b"tail-write"
        m.close()
        os.close(fd)
    call("ftruncate up + mmap write without msync, close", mapgrow)
    describe(f)


def open_files():
    section("rename over and unlink of open files")
    a, b = p("victim"), p("replacement")
    write_file(a, b"old contents\n")
    write_file(b, b"new contents\n")
    fd = os.open(a, os.O_RDWR)
    call("rename replacement over open victim", os.rename, b, a)
    call("read old through fd", os.pread, fd, 100, 0)
    describe_fd(fd, "old victim")
    call("write through fd of replaced file", os.pwrite, fd, b"still", 0)
    call("read back through fd", os.pread, fd, 100, 0)
    os.close(fd)
    describe(a)
    u = p("unlinked")
    write_file(u, b"x" * 9000)
    fd = os.open(u, os.O_RDWR)
    call("unlink open file", os.unlink, u)
    call("write after unlink", os.pwrite, fd, b"y" * 5000, 8000)
    call("read after unlink", os.pread, fd, 20, 8995)
    describe_fd(fd, "unlinked")
    call("fchmod after unlink", os.fchmod, fd, 0o600)
    os.close(fd)
    describe(u)


def links():
    section("link counts")
    d = p("links")
    os.mkdir(d)
    describe(d)
    os.mkdir(os.path.join(d, "sub1"))
    os.mkdir(os.path.join(d, "sub2"))
    describe(d)
    f = os.path.join(d, "f")
    write_file(f, b"linked\n")
    call("link f f2", os.link, f, os.path.join(d, "f2"))
    call("link f sub1/f3", os.link, f, os.path.join(d, "sub1", "f3"))
    describe(f)
    call("link to existing name", os.link, f, os.path.join(d, "f2"))
    call("link directory", os.link, os.path.join(d, "sub1"), os.path.join(d, "sub3"))
    call("unlink f2", os.unlink, os.path.join(d, "f2"))
    describe(f)
    call("rmdir sub2", os.rmdir, os.path.join(d, "sub2"))
    describe(d)
    call("rmdir non-empty", os.rmdir, os.path.join(d, "sub1"))
    call("unlink directory", os.unlink, os.path.join(d, "sub1"))
    call("rmdir file", os.rmdir, f)
    call("mkdir existing", os.mkdir, os.path.join(d, "sub1"))
    call("rmdir .", os.rmdir, os.path.join(d, "sub1", "."))
    call("symlink", os.symlink, "f", os.path.join(d, "s"))
    describe(os.path.join(d, "s"))
    call("symlink existing", os.symlink, "g", os.path.join(d, "s"))
    call("symlink long target", os.symlink, "t" * 4000, os.path.join(d, "longlink"))
    describe(os.path.join(d, "longlink"))
    call("mknod fifo", os.mkfifo, os.path.join(d, "fifo"), 0o640)
    describe(os.path.join(d, "fifo"))
    call("mknod char device", os.mknod, os.path.join(d, "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    describe(os.path.join(d, "null"))
    describe(d)


def renames():
    section("renames")
    d = p("ren")
    os.mkdir(d)
    for name in ("a", "b"):
        write_file(os.path.join(d, name), name.encode() * 10)
    for name in ("d1", "d2", "full"):
        os.mkdir(os.path.join(d, name))
    write_file(os.path.join(d, "full", "x"), b"x")
    j = lambda *n: os.path.join(d, *n)
    call("rename file over file", os.rename, j("a"), j("b"))
    describe(j("b"))
    call("rename missing", os.rename, j("a"), j("c"))
    call("rename file over dir", os.rename, j("b"), j("d1"))
    call("rename dir over file", os.rename, j("d1"), j("b"))
    call("rename dir over empty dir", os.rename, j("d1"), j("d2"))
    describe(d)
    call("rename dir over non-empty dir", os.rename, j("d2"), j("full"))
    call("rename dir into itself", os.rename, j("full"), j("full", "inner"))
    call("rename to itself", os.rename, j("b"), j("b"))
    call("rename hard links of one inode", lambda: (os.link(j("b"), j("b2")), os.rename(j("b"), j("b2"))))
    describe(j("b"))
    describe(j("b2"))
    call("renameat2 NOREPLACE onto existing", renameat2, j("b2"), j("full", "x"), RENAME_NOREPLACE)
    call("renameat2 NOREPLACE new", renameat2, j("b2"), j("fresh"), RENAME_NOREPLACE)
    call("renameat2 EXCHANGE file and dir", renameat2, j("fresh"), j("d2"), RENAME_EXCHANGE)
    describe(j("fresh"))
    describe(j("d2"))
    call("renameat2 EXCHANGE with missing", renameat2, j("fresh"), j("none"), RENAME_EXCHANGE)
    describe(d)


def times():
    section("utimensat and chown -1 -1")
    f = p("times")
    write_file(f, b"t")
    describe(f)
    call("utime explicit ns", os.utime, f, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f)
    emit(f"  atime={st.st_atime_ns} mtime={st.st_mtime_ns}")
    describe(f)
    call("utime now", os.utime, f)
    describe(f)
    call("chown -1 -1", os.chown, f, -1, -1)
    describe(f)
    call("chown same owner", os.chown, f, 0, 0)
    describe(f)
    call("chmod same mode", os.chmod, f, 0o644)
    describe(f)
    os.symlink("times", p("tlink"))
    describe(p("tlink"))
    call("utime symlink nofollow", os.utime, p("tlink"), ns=(3_000_000_000, 4_000_000_789), follow_symlinks=False)
    st = os.lstat(p("tlink"))
    emit(f"  link atime={st.st_atime_ns} mtime={st.st_mtime_ns}")
    describe(p("tlink"))
    describe(f)
    call("utime pre-1970", os.utime, f, ns=(-1_000_000_000, -86400_000_000_001))
    st = os.stat(f)
    emit(f"  atime={st.st_atime_ns} mtime={st.st_mtime_ns}")
    call("utime 2100", os.utime, f, ns=(4_102_444_800_000_000_001, 4_102_444_800_999_999_999))
    st = os.stat(f)
    emit(f"  atime={st.st_atime_ns} mtime={st.st_mtime_ns}")
    call("chown to 123:456", os.chown, f, 123, 456)
    describe(f)
    call("chown -h symlink", os.chown, p("tlink"), 7, 8, follow_symlinks=False)
    describe(p("tlink"))
    d = p("dir")
    describe(d)
    write_file(os.path.join(d, "new"), b"")
    describe(d)
    os.unlink(os.path.join(d, "new"))
    describe(d)


def setgid_and_sticky():
    section("setgid directories and the sticky bit (root)")
    g = p("sgid")
    os.mkdir(g)
    os.chown(g, 0, 2000)
    os.chmod(g, 0o2775)
    describe(g)
    write_file(os.path.join(g, "file"), b"")
    describe(os.path.join(g, "file"))
    os.mkdir(os.path.join(g, "sub"), 0o755)
    describe(os.path.join(g, "sub"))
    os.mkdir(os.path.join(g, "sub", "deeper"))
    describe(os.path.join(g, "sub", "deeper"))
    call("mknod in setgid dir", os.mkfifo, os.path.join(g, "fifo"))
    describe(os.path.join(g, "fifo"))
    call("symlink in setgid dir", os.symlink, "file", os.path.join(g, "sl"))
    describe(os.path.join(g, "sl"))
    s = p("sticky")
    os.mkdir(s)
    os.chmod(s, 0o1777)
    describe(s)
    os.chmod(ROOT, 0o755)
    write_file(p("secret"), b"secret\n", mode=0o600)
    os.chmod(p("secret"), 0o600)
    write_file(p("shared"), b"shared\n", mode=0o666)
    os.chmod(p("shared"), 0o666)
    describe(p("shared"))
    write_file(p("setuid"), b"#!/bin/sh\n", mode=0o4777)
    os.chmod(p("setuid"), 0o6777)
    describe(p("setuid"))
    write_file(p("readonly"), b"ro\n", mode=0o644)
    describe(p("readonly"))
    os.chown(p("sgid"), 0, 1000)


def as_user(uid, gid, groups, body):
    """Runs body() in a child with the given credentials; its lines go to the same stdout."""
    out.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            body()
        except Exception as e:  # a failure of the script itself, not of a call under test
            emit(f"script error as {uid}: {e!r}")
            code = 1
        out.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    emit(f"(user {uid} finished: {os.waitstatus_to_exitcode(status)})")


def unprivileged():
    section("unprivileged callers")

    def user_a():
        mine = p("sticky", "mine")
        call("user A create in sticky dir", write_file, mine, b"a\n", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
        describe(mine)
        call("user A chmod own file", os.chmod, mine, 0o640)
        describe(mine)
        call("user A chmod g+s own file, group 1000", os.chmod, mine, 0o2640)
        describe(mine)
        call("user A chown own file to other group 3000 (member)", os.chown, mine, -1, 3000)
        describe(mine)
        call("user A chmod g+s file of group 3000", os.chmod, mine, 0o2660)
        describe(mine)
        call("user A chown own file to group 4000 (not member)", os.chown, mine, -1, 4000)
        call("user A chown own file to uid 1001", os.chown, mine, 1001, -1)
        call("user A chown own file to own uid", os.chown, mine, 1000, -1)
        describe(mine)
        call("user A chmod root's file", os.chmod, p("shared"), 0o600)
        call("user A chown root's file", os.chown, p("shared"), 1000, 1000)
        call("user A read secret", lambda: open(p("secret"), "rb").read())
        call("user A write shared", lambda: write_file(p("shared"), b"by A\n", os.O_WRONLY))
        describe(p("shared"))
        call("user A truncate shared", os.truncate, p("shared"), 2)
        describe(p("shared"))
        call("user A write readonly", lambda: write_file(p("readonly"), b"x", os.O_WRONLY))
        call("user A utime now on shared (write permission)", os.utime, p("shared"))
        describe(p("shared"))
        call("user A utime explicit on shared", os.utime, p("shared"), ns=(5, 6))
        call("user A utime now on readonly", os.utime, p("readonly"))
        call("user A write setuid file", lambda: write_file(p("setuid"), b"#!/bin/bash\n", os.O_WRONLY))
        describe(p("setuid"))
        call("user A unlink root's file in root-owned dir", os.unlink, p("shared"))
        call("user A mkdir in root-owned dir", os.mkdir, p("a-dir"))
        call("user A create in setgid dir (group 1000)", write_file, p("sgid", "by-a"), b"", os.O_WRONLY | os.O_CREAT, 0o2775)
        describe(p("sgid", "by-a"))
        call("user A mkdir in setgid dir", os.mkdir, p("sgid", "dir-a"), 0o777)
        describe(p("sgid", "dir-a"))
        call("user A setxattr user. on own file", os.setxattr, mine, "user.owner", b"a")
        call("user A setxattr user. on root's file", os.setxattr, p("shared"), "user.x", b"a")
        call("user A setxattr trusted.", os.setxattr, mine, "trusted.x", b"a")
        call("user A list root dir", lambda: len(os.listdir(ROOT)))

    def user_b():
        theirs = p("sticky", "mine")
        call("user B write A's file (group member 3000, g+rw)", lambda: write_file(theirs, b"b\n", os.O_WRONLY))
        describe(theirs)
        call("user B unlink A's file in sticky dir", os.unlink, theirs)
        call("user B rename A's file in sticky dir", os.rename, theirs, p("sticky", "moved"))
        call("user B create own in sticky dir", write_file, p("sticky", "b"), b"b\n", os.O_WRONLY | os.O_CREAT, 0o600)
        call("user B unlink own in sticky dir", os.unlink, p("sticky", "b"))
        call("user B chmod A's file", os.chmod, theirs, 0o777)
        call("user B utime explicit on A's file", os.utime, theirs, ns=(1, 2))

    as_user(1000, 1000, [3000], user_a)
    as_user(1001, 1001, [3000], user_b)
    describe(p("sticky", "mine"))


def fallocates():
    section("fallocate")
    f = p("falloc")
    call("fallocate 0..1M", lambda: fallocate(os.open(f, os.O_RDWR | os.O_CREAT, 0o644), 0, 0, 1 << 20))
    describe(f)
    fd = os.open(f, os.O_RDWR)
    call("fallocate keep-size past EOF", fallocate, fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20)
    describe(f)
    call("read preallocated zeros", os.pread, fd, 8, 4096)
    call("write into preallocated", os.pwrite, fd, b"w" * 6000, 10000)
    describe(f)
    call("punch hole 4096..12288", fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
    describe(f)
    call("read punched", os.pread, fd, 16, 12280)
    call("punch partial block", fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 13000, 100)
    call("read partial punch", os.pread, fd, 8, 12996)
    call("punch without keep-size", fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
    call("fallocate zero length", fallocate, fd, 0, 0, 0)
    call("fallocate negative offset", fallocate, fd, 0, -1, 4096)
    describe(f)
    os.close(fd)
    # Fragmented free space: 20 one-block holes, then an allocation that must use them.
    frag = p("frag")
    os.mkdir(frag)
    for i in range(40):
        write_file(os.path.join(frag, f"{i:02}"), b"z" * 4096)
    for i in range(0, 40, 2):
        os.unlink(os.path.join(frag, f"{i:02}"))
    g = os.path.join(frag, "big")
    call("fallocate 120k into fragmented space", lambda: fallocate(os.open(g, os.O_RDWR | os.O_CREAT, 0o644), 0, 0, 120 * 1024))
    describe(g, allocated=120 * 1024)
    fd = os.open(g, os.O_RDWR)
    call("fallocate 2M more, keep size", fallocate, fd, FALLOC_FL_KEEP_SIZE, 120 * 1024, 2 << 20)
    describe(g, allocated=120 * 1024 + (2 << 20))
    call("ftruncate down after fallocate", os.ftruncate, fd, 4096)
    describe(g, allocated=4096)
    call("punch after fallocate", fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    describe(g, allocated=0)
    os.close(fd)
    call("unlink fallocated", os.unlink, g)
    describe(frag)
    # Contiguous free space again, so the allocators of the steps after this agree.
    for i in range(1, 40, 2):
        os.unlink(os.path.join(frag, f"{i:02}"))


def copies():
    section("copy_file_range and sendfile")
    src, dst = p("cfr-src"), p("cfr-dst")
    write_file(src, bytes(range(256)) * 100)
    write_file(dst, b"d" * 1000)
    describe(dst)
    def cfr():
        a = os.open(src, os.O_RDONLY)
        b = os.open(dst, os.O_WRONLY)
        n = os.copy_file_range(a, b, 10000, 100, 500)
        os.close(a)
        os.close(b)
        return n
    call("copy_file_range 10000 bytes to offset 500", cfr)
    describe(dst)
    def sendfile():
        a = os.open(src, os.O_RDONLY)
        b = os.open(dst, os.O_WRONLY)
        os.lseek(b, 0, os.SEEK_END)
        n = os.sendfile(b, a, 0, 3000)
        os.close(a)
        os.close(b)
        return n
    call("sendfile 3000 at the end", sendfile)
    describe(dst)


def xattrs():
    section("xattrs")
    f = p("xattrs")
    write_file(f, b"x")
    call("setxattr user.a", os.setxattr, f, "user.a", b"1")
    call("setxattr CREATE existing", os.setxattr, f, "user.a", b"2", os.XATTR_CREATE)
    call("setxattr REPLACE missing", os.setxattr, f, "user.b", b"2", os.XATTR_REPLACE)
    call("setxattr REPLACE existing", os.setxattr, f, "user.a", b"3", os.XATTR_REPLACE)
    call("getxattr user.a", os.getxattr, f, "user.a")
    call("getxattr missing", os.getxattr, f, "user.none")
    call("setxattr empty value", os.setxattr, f, "user.empty", b"")
    call("getxattr empty", os.getxattr, f, "user.empty")
    call("setxattr large value", os.setxattr, f, "user.big", b"v" * 3000)
    call("setxattr too large", os.setxattr, f, "user.huge", b"v" * 70000)
    call("setxattr bad namespace", os.setxattr, f, "bogus.x", b"1")
    call("setxattr trusted.", os.setxattr, f, "trusted.t", b"\x00\x01")
    call("listxattr", lambda: sorted(os.listxattr(f)))
    call("removexattr user.a", os.removexattr, f, "user.a")
    call("removexattr missing", os.removexattr, f, "user.a")
    call("setxattr on symlink user.", os.setxattr, p("link"), "user.x", b"1", follow_symlinks=False)
    call("listxattr after", lambda: sorted(os.listxattr(f)))
    describe(f)


def readdir_during_changes():
    section("readdir during changes")
    d = p("busy")
    os.mkdir(d)
    stable = [f"stable-{i:03}" for i in range(300)]
    for name in stable:
        write_file(os.path.join(d, name), b"")
    for i in range(100):
        write_file(os.path.join(d, f"doomed-{i:03}"), b"")
    seen = []
    with os.scandir(d) as it:
        for n, entry in enumerate(it):
            seen.append(entry.name)
            if n == 50:
                for i in range(100):
                    os.unlink(os.path.join(d, f"doomed-{i:03}"))
                for i in range(100):
                    write_file(os.path.join(d, f"born-{i:03}"), b"")
    stable_seen = sorted(x for x in seen if x.startswith("stable-"))
    emit(f"  stable entries each seen once: {stable_seen == stable}")
    emit(f"  no entry seen twice: {len(seen) == len(set(seen))}")
    emit(f"  after: {len(os.listdir(d))} entries")
    call("rmdir busy dir", os.rmdir, d)


def tree():
    section("final tree")
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            line = f"  {rel(full)} {oct(st.st_mode)} n={st.st_nlink} {st.st_uid}:{st.st_gid}"
            if stat.S_ISREG(st.st_mode):
                line += f" size={st.st_size} blocks={st.st_blocks} data={digest(full)}"
            elif stat.S_ISLNK(st.st_mode):
                line += f" -> {os.readlink(full)}"
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                line += f" rdev={os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
            try:
                names = sorted(os.listxattr(full, follow_symlinks=False))
                line += " xattrs=" + ",".join(f"{n}={os.getxattr(full, n, follow_symlinks=False).hex()}" for n in names)
            except OSError as e:
                line += f" xattrs={errname(e.errno)}"
            emit(line)


def main():
    os.umask(0o022)
    open_flags()
    overwrites()
    sizes()
    mmaps()
    open_files()
    links()
    renames()
    times()
    setgid_and_sticky()
    unprivileged()
    fallocates()
    copies()
    xattrs()
    readdir_during_changes()
    tree()


if __name__ == "__main__":
    main()
