"""Measures how long `sitegate` takes to load the precompiled sandbox guest.

Usage: python3 bench/sandbox_load.py [RUNS] [SITEGATE...]

For each `sitegate` binary (default: this checkout's release build) it prepares the guest once
in a cache of its own, then runs `sitegate -v explain` on a one-line hook that the policy sends
to the sandbox, with the evaluation cache emptied before each run so that every run loads the
guest. It reports the median of the load time and of the evaluation time sitegate logs
("loaded the sandbox guest in ...", "evaluated a hook in ...") and of the whole run's wall
time. With several binaries the runs alternate, so that drift in the machine's load affects
each alike. The guest is `target/sandbox/guest.wasm` unless
`SITEGATE_SANDBOX_GUEST` names another.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
LOADED = re.compile(r"loaded the sandbox guest in ([0-9.]+) ms")
EVALUATED = re.compile(r"evaluated a hook in ([0-9.]+) ms")


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    binaries = [os.path.abspath(b) for b in sys.argv[2:]] or [
        os.path.join(ROOT, "target", "release", "sitegate")]
    guest = os.environ.get("SITEGATE_SANDBOX_GUEST") or os.path.join(
        ROOT, "target", "sandbox", "guest.wasm")
    with tempfile.TemporaryDirectory() as work:
        venv = os.path.join(work, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        python = os.path.join(venv, "bin", "python")
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site = subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                              text=True).stdout.strip()
        hook = os.path.join(site, "probe.pth")
        with open(hook, "w") as file:
            file.write("import sys; sys.path.append('/nonexistent')\n")
        policy = os.path.join(work, "policy.toml")
        with open(policy, "w") as file:
            file.write('[[allow]]\nfile = "probe.pth"\nmode = "sandbox"\n')

        environments = []
        for index, binary in enumerate(binaries):
            env = dict(os.environ, SITEGATE_CACHE_DIR=os.path.join(work, "cache-%d" % index),
                       SITEGATE_SANDBOX_GUEST=guest, NO_COLOR="1")
            env.pop("SITEGATE_LOG", None)
            subprocess.run([binary, "sandbox", "prepare"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            environments.append(env)

        loads = [[] for _ in binaries]
        evaluations = [[] for _ in binaries]
        walls = [[] for _ in binaries]
        command = ["-v", "--policy", policy, "explain", hook, "--python", python]
        for run in range(runs + 2):
            for index, binary in enumerate(binaries):
                env = environments[index]
                shutil.rmtree(os.path.join(env["SITEGATE_CACHE_DIR"], "evaluations"),
                              ignore_errors=True)
                start = time.perf_counter()
                finished = subprocess.run([binary] + command, env=env, check=True,
                                          capture_output=True, text=True)
                wall = time.perf_counter() - start
                loaded = LOADED.search(finished.stderr)
                evaluated = EVALUATED.search(finished.stderr)
                if not loaded or not evaluated:
                    sys.exit("no times in the log of %s:\n%s" % (binary, finished.stderr))
                # The first two runs of each warm the page cache and are not counted.
                if run >= 2:
                    loads[index].append(float(loaded.group(1)))
                    evaluations[index].append(float(evaluated.group(1)))
                    walls[index].append(wall * 1e3)

        for index, binary in enumerate(binaries):
            load, wall = loads[index], walls[index]
            print("%s: load median %.1f ms (%.1f to %.1f), evaluation median %.1f ms, "
                  "whole explain median %.1f ms, %d runs"
                  % (binary, statistics.median(load), min(load), max(load),
                     statistics.median(evaluations[index]), statistics.median(wall), runs))


if __name__ == "__main__":
    main()
