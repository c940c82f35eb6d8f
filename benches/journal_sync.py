#!/usr/bin/env python3
"""What putting a small journal in place durably costs, by way of writing it.

    python3 benches/journal_sync.py ROUNDS [DIR ...]

For each directory (default: $TMPDIR or /tmp, and /dev/shm when it exists), each
round writes a 4 KB file under a temporary name and renames it over `journal.json`,
three ways, in an order that changes every round, and prints the median and quartiles
of each in microseconds:

- `none`: write, rename (atomic for readers, not durable: the trace file's way);
- `sfr`: write, `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`, rename (faultline
  before issue 10, through `unsafe` libc calls; durable only by ext4/XFS ordering);
- `fsync`: write, `fdatasync`, rename, `fsync` of the directory (faultline since issue
  10, with safe `std` calls: `sync_data`, `rename`, `File::open(dir)?.sync_all()`).

A program that prints figures, not a test; it writes only under DIR/journal-sync-PID.
"""

import ctypes
import os
import random
import shutil
import statistics
import sys
import time

SFR_ALL = 1 | 2 | 4  # SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER
DATA = b"x" * 4096


def main() -> int:
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    dirs = sys.argv[2:] or [os.environ.get("TMPDIR", "/tmp")] + (
        ["/dev/shm"] if os.path.isdir("/dev/shm") else []
    )
    libc = ctypes.CDLL(None, use_errno=True)
    for base in dirs:
        d = os.path.join(base, f"journal-sync-{os.getpid()}")
        os.makedirs(d, exist_ok=True)
        try:
            measure(libc, d, rounds)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return 0


def measure(libc, d: str, rounds: int) -> None:
    dst = os.path.join(d, "journal.json")
    with open(dst, "wb") as f:
        f.write(DATA)

    def put(i: int, how: str) -> None:
        tmp = os.path.join(d, f".journal.json.{i}.{how}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, DATA)
        if how == "sfr":
            libc.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0), SFR_ALL)
        elif how == "fsync":
            os.fdatasync(fd)
        os.rename(tmp, dst)
        os.close(fd)
        if how == "fsync":
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

    ways = ["none", "sfr", "fsync"]
    took = {w: [] for w in ways}
    for i in range(rounds):
        random.shuffle(ways)
        for w in ways:
            start = time.perf_counter()
            put(i, w)
            took[w].append((time.perf_counter() - start) * 1e6)
    print(f"{d} ({rounds} rounds, µs):")
    for w in ("none", "sfr", "fsync"):
        v = sorted(took[w])
        q1, q3 = v[len(v) // 4], v[(3 * len(v)) // 4]
        print(f"  {w:6} median {statistics.median(v):8.0f}   q1 {q1:8.0f}   q3 {q3:8.0f}")


if __name__ == "__main__":
    sys.exit(main())
