"""``python -m bench.reaper CMD...``: time CMD, then adopt and reap whatever it left running.

A job's fork server and resource tracker outlive ``launch.py`` by a moment and
are re-parented to init, so their CPU time would count as *another*
process's and flag every S1 run as disturbed. Here they are re-parented to
this process instead (``PR_SET_CHILD_SUBREAPER``) and reaped, so their time
reaches the benchmark through this process's ``cutime``. Prints CMD's wall
seconds on stdout; CMD's own output goes to stderr (shown only on failure).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    while True:  # the orphans it left: wait for each (they exit once their parent is gone)
        try:
            os.wait()
        except ChildProcessError:
            break
    if proc.returncode:
        sys.stderr.write(proc.stdout.decode(errors="replace")[-4000:])
        return proc.returncode
    print(f"{seconds:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
