"""Measures the start-up time `sitegate exec` adds to `python -c pass`.

Usage: python3 bench/startup.py [RUNS] [PYTHON...]

For each interpreter it makes a venv in a temporary directory (with setuptools' hook where
the venv ships it), warms sitegate's cache, then alternates direct and guarded starts and
prints the median wall time of each and their ratio, and the same for the interpreter started
directly with the plan and the preloaded library (the mechanism's own share, without the
launcher's process). Pairs alternate so that drift in the
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
            # The mechanism alone: the interpreter started directly with the plan sitegate made.
            probe = [SITEGATE, "exec", "--", target, "-c",
                     "import os; print(os.environ['LD_PRELOAD']); print(os.environ['SITEGATE_PLAN'])"]
            preload, plan = subprocess.run(probe, env=env, check=True, capture_output=True,
                                           text=True).stdout.split()
            planned_env = dict(env, LD_PRELOAD=preload, SITEGATE_PLAN=plan)
            for _ in range(5):
                timed(direct_command, env)
                timed(guarded_command, env)
            direct, guarded, planned = [], [], []
            for _ in range(runs):
                direct.append(timed(direct_command, env))
                guarded.append(timed(guarded_command, env))
                planned.append(timed(direct_command, planned_env))
            d, g, p = (statistics.median(x) for x in (direct, guarded, planned))
            print("%s: direct %.2f ms, sitegate exec %.2f ms (+%.2f ms, ratio %.3f), "
                  "plan and preload alone %.2f ms (+%.2f ms, ratio %.3f), %d runs each"
                  % (python, d * 1e3, g * 1e3, (g - d) * 1e3, g / d, p * 1e3, (p - d) * 1e3,
                     p / d, runs))


if __name__ == "__main__":
    main()
