#!/usr/bin/env python3
"""Writes an image as a fuzz input in FuzzDevice's sparse form (Tests/GuestFSTests/Fuzz/FuzzDevice.swift):
b"IMFZSPRS", the device size (UInt64 LE), then (offset UInt32 LE, length UInt16 LE, bytes) records for
the non-zero 512-byte sectors. Usage: sparse.py IMAGE OUTPUT"""
import struct
import sys

SECTOR = 512
MAX_RECORD = 65024  # 127 sectors: fits the UInt16 length

def main(src, dst):
    data = open(src, "rb").read()
    if len(data) >= 1 << 32:
        sys.exit(f"{src}: too big for a sparse fuzz input")
    out = bytearray(b"IMFZSPRS" + struct.pack("<Q", len(data)))
    pos = 0
    while pos < len(data):
        if not any(data[pos:pos + SECTOR]):
            pos += SECTOR
            continue
        end = pos
        while end < len(data) and end - pos < MAX_RECORD and any(data[end:end + SECTOR]):
            end += SECTOR
        end = min(end, len(data))
        out += struct.pack("<IH", pos, end - pos) + data[pos:end]
        pos = end
    open(dst, "wb").write(out)

if __name__ == "__main__":
    main(*sys.argv[1:3])
