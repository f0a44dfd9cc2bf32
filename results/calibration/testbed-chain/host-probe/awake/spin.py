"""Keep one host core busy at SCHED_IDLE (it runs only when nothing else wants the core)
for the given seconds: spin.py CORE SECONDS."""

import os
import sys
import time


def main() -> None:
    os.sched_setaffinity(0, {int(sys.argv[1])})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        pass


if __name__ == "__main__":
    main()
