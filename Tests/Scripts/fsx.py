#!/usr/bin/env python3
"""A file-system exerciser in the manner of xfstests' fsx, written for imagemount's tests.

Seeded random operations on one file: write, mmap write, read, mmap read, truncate up and
down, fallocate (allocate, keep-size), punch hole, copy_file_range within the file, fsync,
close and reopen. An in-memory model holds what the file must contain; every read, and the
size after every operation, is checked against it, and the whole file every 500 operations.
On the first mismatch it prints the seed, the operation number and the last operations, and
exits 1; at the end it prints one summary line and exits 0.

Usage: fsx.py FILE SEED OPERATIONS [MAX_SIZE]
"""
import ctypes
import ctypes.util
import errno
import mmap
import os
import random
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
PAGE = mmap.PAGESIZE

path = sys.argv[1]
seed = int(sys.argv[2])
operations = int(sys.argv[3])
max_size = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20
rng = random.Random(seed)
model = bytearray()
history = []
counts = {}


def fail(message):
    print(f"fsx: seed {seed}, operation {len(history)}: {message}")
    print("last operations:")
    for line in history[-25:]:
        print("  " + line)
    sys.exit(1)


def fallocate(fd, mode, offset, length):
    if libc.fallocate(fd, mode, offset, length) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def check_range(got, offset, what):
    want = bytes(model[offset:offset + len(got)])
    if got != want:
        at = next(i for i in range(len(got)) if i >= len(want) or got[i] != want[i])
        fail(f"{what}: byte {offset + at} is {got[at]:#04x}, the model says "
             f"{want[at] if at < len(want) else 'past EOF'} (read {len(got)} at {offset}, model size {len(model)})")


def check_size(fd, what):
    size = os.fstat(fd).st_size
    if size != len(model):
        fail(f"after {what}: size is {size}, the model says {len(model)}")


def extend(to):
    if to > len(model):
        model.extend(bytes(to - len(model)))


def span(limit=None):
    """An offset and a length, biased to small ranges, page edges and the end of the file."""
    limit = limit or max_size
    choice = rng.random()
    if choice < 0.2 and model:
        offset = max(0, len(model) - rng.randrange(1, 3 * PAGE))
    elif choice < 0.4 and limit > PAGE:
        offset = rng.randrange(0, limit // PAGE) * PAGE + rng.choice((0, 0, 1, PAGE - 1))
    else:
        offset = rng.randrange(0, limit)
    length = rng.choice((1, 7, 512, PAGE - 1, PAGE, PAGE + 1, rng.randrange(1, 64 * 1024), rng.randrange(1, 4 * PAGE)))
    offset = min(offset, limit - 1)
    length = max(1, min(length, limit - offset))
    return offset, length


def op_write(fd):
    offset, length = span()
    data = rng.randbytes(length)
    history.append(f"write {offset} +{length}")
    n = os.pwrite(fd, data, offset)
    if n != length:
        fail(f"short write {n} of {length}")
    extend(offset + length)
    model[offset:offset + length] = data


def op_mapwrite(fd):
    offset, length = span()
    data = rng.randbytes(length)
    history.append(f"mapwrite {offset} +{length}")
    end = offset + length
    if end > len(model):
        os.ftruncate(fd, end)
        extend(end)
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(fd, end - start, offset=start)
    m[offset - start:end - start] = data
    if rng.random() < 0.5:
        m.flush()
    m.close()
    model[offset:end] = data


def op_read(fd):
    offset, length = span(max(len(model) + PAGE, 1))
    history.append(f"read {offset} +{length}")
    got = os.pread(fd, length, offset)
    expected = max(0, min(length, len(model) - offset))
    if len(got) != expected:
        fail(f"read {length} at {offset} returned {len(got)} bytes, the model says {expected}")
    check_range(got, offset, "read")


def op_mapread(fd):
    if not model:
        return op_read(fd)
    offset, length = span(len(model))
    history.append(f"mapread {offset} +{length}")
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(fd, offset + length - start, prot=mmap.PROT_READ, offset=start)
    got = m[offset - start:offset - start + length]
    m.close()
    check_range(got, offset, "mapread")


def op_truncate(fd):
    size = rng.choice((0, rng.randrange(0, max_size), len(model) // 2, len(model) + rng.randrange(1, 3 * PAGE)))
    size = min(size, max_size)
    history.append(f"truncate {size} (from {len(model)})")
    os.ftruncate(fd, size)
    if size < len(model):
        del model[size:]
    else:
        extend(size)


def op_fallocate(fd):
    offset, length = span()
    keep = rng.random() < 0.5
    history.append(f"fallocate{' keep-size' if keep else ''} {offset} +{length}")
    fallocate(fd, FALLOC_FL_KEEP_SIZE if keep else 0, offset, length)
    if not keep:
        extend(offset + length)


def op_punch(fd):
    offset, length = span()
    history.append(f"punch {offset} +{length}")
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
    end = min(offset + length, len(model))
    if offset < end:
        model[offset:end] = bytes(end - offset)


def op_copy(fd):
    if not model:
        return op_write(fd)
    source = rng.randrange(0, len(model))
    length = rng.randrange(1, min(64 * 1024, max_size) + 1)
    target = rng.randrange(0, max_size - length + 1) if max_size > length else 0
    # Overlapping ranges in one file are EINVAL; keep them apart.
    if not (target + length <= source or source + length <= target):
        return op_write(fd)
    history.append(f"copy_file_range {source} -> {target} +{length}")
    n = os.copy_file_range(fd, fd, length, source, target)
    expected = max(0, min(length, len(model) - source))
    if n != expected:
        fail(f"copy_file_range returned {n}, the model says {expected}")
    data = bytes(model[source:source + n])
    if n:
        extend(target + n)
        model[target:target + n] = data


def op_fsync(fd):
    history.append("fsync")
    os.fsync(fd)


OPERATIONS = [
    (op_write, 20), (op_mapwrite, 8), (op_read, 20), (op_mapread, 8), (op_truncate, 8),
    (op_fallocate, 8), (op_punch, 8), (op_copy, 6), (op_fsync, 2),
]
weights = [w for _, w in OPERATIONS]


def main():
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(operations):
        op = rng.choices(OPERATIONS, weights)[0][0]
        try:
            op(fd)
        except OSError as e:
            fail(f"{history[-1] if history else op.__name__}: {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
        counts[op.__name__] = counts.get(op.__name__, 0) + 1
        check_size(fd, history[-1] if history else op.__name__)
        if rng.random() < 0.02:
            history.append("close and reopen")
            os.close(fd)
            fd = os.open(path, os.O_RDWR)
        if i % 500 == 499:
            got = os.pread(fd, len(model) + 1, 0)
            if len(got) != len(model):
                fail(f"whole-file read returned {len(got)} bytes, the model says {len(model)}")
            check_range(got, 0, "whole-file read")
    os.close(fd)
    with open(path, "rb") as f:
        got = f.read()
    if got != bytes(model):
        fail("final contents differ from the model")
    summary = " ".join(f"{name[3:]}={n}" for name, n in sorted(counts.items()))
    print(f"fsx: seed {seed}: {operations} operations, final size {len(model)}, all reads matched ({summary})")


if __name__ == "__main__":
    main()
