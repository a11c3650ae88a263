#!/usr/bin/env python3
"""Writes the bench scripts' synthetic trees, the same bytes every time (fixed seeds).

usage: bench/make-tree.py SHAPE DIR
  small4000   40 directories of 99 files, sizes from 0 to about 64 KiB (cat-copyout.sh, tar.sh,
              before-after.sh, profile.sh)
  mixed200mb  200 MB in 2630 files over 26 directories: a few large files, many small ones, like
              /usr (rw.sh, profile.sh)
"""
import os
import random
import sys


def small4000(root):
    random.seed(4000)
    os.makedirs(root, exist_ok=True)
    for d in range(40):
        dd = os.path.join(root, f"dir{d:02d}")
        os.mkdir(dd)
        for f in range(99):
            with open(os.path.join(dd, f"file{f:03d}"), "wb") as fh:
                fh.write(random.randbytes(random.choice([0, 10, 700, 4096, 9000, 30000, 65000])))


def mixed200mb(root):
    random.seed(200)
    sizes = [1 << 20] * 130 + [1 << 16] * 1000 + [4096] * 1000 + [200] * 500
    random.shuffle(sizes)
    for i, size in enumerate(sizes):
        d = os.path.join(root, f"dir{i % 26:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"file{i:04d}"), "wb") as fh:
            fh.write(random.randbytes(size))


SHAPES = {"small4000": small4000, "mixed200mb": mixed200mb}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    SHAPES[sys.argv[1]](sys.argv[2])
