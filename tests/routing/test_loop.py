"""The engine's event loop is one per process, however many threads ask for it at once."""

from __future__ import annotations

import subprocess
import sys

RACE = """
import threading
from routing.loop import engine_loop

barrier = threading.Barrier(16)
loops = []

def ask():
    barrier.wait()
    loops.append(engine_loop())

threads = [threading.Thread(target=ask) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
engines = [t for t in threading.enumerate() if t.name == "switchboard-engine"]
print(len({id(loop) for loop in loops}), len(engines))
"""


def test_threads_starting_at_once_share_one_engine_loop() -> None:
    # A fresh interpreter: in this one the loop may already exist.
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.split() == ["1", "1"]
