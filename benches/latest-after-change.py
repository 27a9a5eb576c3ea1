#!/usr/bin/env python3
"""`ls latest` after a backup, once the repository has been still for 3 s: the first command
after the change, and the nine after it, for each binary in turn (four rounds).

    RESPALDO_REPOSITORY=... RESPALDO_PASSWORD=... [RESPALDO_CACHE_DIR=...] \\
        benches/latest-after-change.py SOURCE_FILE BINARY...

SOURCE_FILE is a file of an existing backup's source folder (its parent); a byte is appended
to it before each backup. The repository must hold snapshots of that folder
(docs/benchmarks.md, "A pick after a change keeps it").
"""
import os
import statistics
import subprocess
import sys
import time


def run(binary, *args):
    start = time.perf_counter()
    subprocess.run([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return (time.perf_counter() - start) * 1000


def main():
    source_file, binaries = sys.argv[1], sys.argv[2:]
    if not binaries:
        sys.exit(__doc__)
    source = os.path.dirname(os.path.abspath(source_file))
    times = {b: {"first": [], "next": []} for b in binaries}
    for _ in range(4):
        for binary in binaries:
            with open(source_file, "ab") as f:
                f.write(b"x")
            run(binary, "backup", "-q", "--no-log", source)
            time.sleep(3)
            times[binary]["first"].append(run(binary, "ls", "latest"))
            times[binary]["next"].extend(run(binary, "ls", "latest") for _ in range(9))
    for binary in binaries:
        first, after = times[binary]["first"], times[binary]["next"]
        print(f"{binary}: first `ls latest` median {statistics.median(first):.1f} ms "
              f"({', '.join(f'{t:.1f}' for t in first)}); "
              f"the nine after it median {statistics.median(after):.1f} ms")


if __name__ == "__main__":
    main()
