"""Measures the start-up time `sitegate exec` adds to `python -c pass`.

Usage: python3 bench/startup.py [RUNS] [PYTHON...]

For each interpreter it makes a venv in a temporary directory (with setuptools' hook where
the venv ships it), warms sitegate's cache, then alternates direct and guarded starts and
prints the median wall time of each and their ratio. Pairs alternate so that drift in the
machine's load affects both sides alike.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SITEGATE = os.path.join(HERE, "..", "target", "release", "sitegate")


def timed(command, env):
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    pythons = sys.argv[2:] or [sys.executable]
    for python in pythons:
        with tempfile.TemporaryDirectory() as work:
            env = dict(os.environ, SITEGATE_CACHE_DIR=os.path.join(work, "cache"))
            venv = os.path.join(work, "venv")
            subprocess.run([python, "-m", "venv", venv], check=True)
            target = os.path.join(venv, "bin", "python")
            direct_command = [target, "-c", "pass"]
            guarded_command = [SITEGATE, "exec", "--", target, "-c", "pass"]
            for _ in range(5):
                timed(direct_command, env)
                timed(guarded_command, env)
            direct, guarded = [], []
            for _ in range(runs):
                direct.append(timed(direct_command, env))
                guarded.append(timed(guarded_command, env))
            d, g = statistics.median(direct), statistics.median(guarded)
            print("%s: direct %.2f ms, sitegate exec %.2f ms, added %.2f ms (ratio %.3f), %d pairs"
                  % (python, d * 1e3, g * 1e3, (g - d) * 1e3, g / d, runs))


if __name__ == "__main__":
    main()
