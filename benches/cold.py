#!/usr/bin/env python3
"""Compare commands the way `compare.rs` measures them: cold.

    python3 benches/cold.py ROUNDS NAME=COMMAND [NAME=COMMAND ...]

Each round runs every command once, in a random order, each right after a
`chaos validate` of benches/fixtures/three-activities.json (so that every command
starts with the caches full of Python, as in the bench), and prints the median,
quartiles and minimum wall time of each command in ms. A command that exits non-zero
is reported. Python's own spawn is inside the figures, the same for every command:
compare commands with each other, not with the bench's absolute figures.

FAULTLINE_BENCH_CHAOS names the `chaos` executable (default: target/ctk-venv/bin/chaos).
"""

import os
import random
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    commands = []
    for arg in sys.argv[2:]:
        name, sep, command = arg.partition("=")
        if not sep or not command:
            print(f"cold.py: expected NAME=COMMAND, got {arg!r}", file=sys.stderr)
            return 2
        commands.append((name, shlex.split(command)))
    chaos = os.environ.get(
        "FAULTLINE_BENCH_CHAOS", os.path.join(ROOT, "target", "ctk-venv", "bin", "chaos")
    )
    fixture = os.path.join(ROOT, "benches", "fixtures", "three-activities.json")
    pollute = [chaos, "--no-version-check", "--no-log-file", "validate", fixture]
    if not os.access(chaos, os.X_OK):
        print(f"cold.py: {chaos} is not an executable (FAULTLINE_BENCH_CHAOS)", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    devnull = os.open(os.devnull, os.O_RDWR)
    quiet = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    times = {name: [] for name, _ in commands}
    failed = 0
    for _ in range(rounds):
        order = list(commands)
        random.shuffle(order)
        for name, argv in order:
            subprocess.run(pollute, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60, cwd=ROOT)
            # posix_spawn, not subprocess: Python's fork-based spawn added a bimodal
            # delay of several ms to every command alike on this VM.
            start = time.perf_counter_ns()
            try:
                pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=quiet)
            except OSError as e:
                print(f"cold.py: cannot start {name} ({argv[0]}): {e}", file=sys.stderr)
                return 2
            _, status = os.waitpid(pid, 0)
            times[name].append((time.perf_counter_ns() - start) / 1e6)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                failed += 1
                print(f"cold.py: {name} exited with {code}", file=sys.stderr)
    for name, _ in commands:
        v = sorted(times[name])
        q1, q3 = v[len(v) // 4], v[(3 * len(v)) // 4]
        print(f"{name:24} median {statistics.median(v):7.3f}  q1 {q1:7.3f}  "
              f"q3 {q3:7.3f}  min {v[0]:7.3f}  (ms, {len(v)} runs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
