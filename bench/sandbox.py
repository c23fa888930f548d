"""Measures the WebAssembly sandbox: loading the precompiled guest, evaluating one small hook,
and the peak memory of a process that does both.

Usage: python3 bench/sandbox.py [RUNS] [PYTHON]

It makes a venv in a temporary directory with one hook (`import sys; sys.path.append(...)`)
and a policy that sends it to the sandbox, prepares the guest once in a private cache, then
runs `sitegate -v explain` RUNS times (default 30), each time with the evaluation cache
emptied so that the guest is loaded and the hook evaluated. It reads the load and evaluation
times that `-v` logs, and each run's peak resident memory from `wait4`, and prints medians.
With `--prepare` it also times `sitegate sandbox prepare` into an empty cache, three times.
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
SITEGATE = os.path.join(HERE, "..", "target", "release", "sitegate")


def run(command, env):
    """Runs a command; returns its stderr and its peak resident memory in MiB."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(command), stderr))
    return stderr, usage.ru_maxrss / 1024


def logged(stderr, what):
    return [float(ms) for ms in re.findall(what + r" in ([0-9.]+) ms", stderr)]


def main():
    arguments = [a for a in sys.argv[1:] if a != "--prepare"]
    runs = int(arguments[0]) if arguments else 30
    python = arguments[1] if len(arguments) > 1 else sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, SITEGATE_CACHE_DIR=os.path.join(scratch, "cache"))
        env.pop("PYTHONPATH", None)
        venv = os.path.join(scratch, "venv")
        subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
        site = subprocess.run(
            [os.path.join(venv, "bin", "python"), "-c",
             "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        hook = os.path.join(site, "bench.pth")
        with open(hook, "w") as file:
            file.write("import sys; sys.path.append(sitedir + '/bench')\n")
        policy = os.path.join(scratch, "policy.toml")
        with open(policy, "w") as file:
            file.write('[[allow]]\nfile = "bench.pth"\nmode = "sandbox"\n')

        if "--prepare" in sys.argv:
            for _ in range(3):
                shutil.rmtree(env["SITEGATE_CACHE_DIR"], ignore_errors=True)
                start = time.perf_counter()
                _, peak = run([SITEGATE, "sandbox", "prepare"], env)
                print("prepare: %.1f s, peak %.0f MiB" % (time.perf_counter() - start, peak))
        else:
            run([SITEGATE, "sandbox", "prepare"], env)

        explain = [SITEGATE, "-v", "--policy", policy, "explain", hook, "--python",
                   os.path.join(venv, "bin", "python")]
        loads, evaluations, peaks = [], [], []
        for _ in range(runs):
            shutil.rmtree(os.path.join(env["SITEGATE_CACHE_DIR"], "evaluations"),
                          ignore_errors=True)
            stderr, peak = run(explain, env)
            loads += logged(stderr, "loaded the sandbox guest")
            # The first evaluation of a process is the one a start with one changed hook pays.
            evaluations += logged(stderr, "evaluated a hook")[:1]
            peaks.append(peak)
        print("runs: %d, target %s" % (runs, python))
        print("load of the precompiled guest: median %.1f ms (min %.1f, max %.1f)"
              % (statistics.median(loads), min(loads), max(loads)))
        print("first evaluation of a small hook: median %.1f ms (min %.1f, max %.1f)"
              % (statistics.median(evaluations), min(evaluations), max(evaluations)))
        print("peak resident memory of `sitegate explain`: median %.0f MiB (max %.0f)"
              % (statistics.median(peaks), max(peaks)))


if __name__ == "__main__":
    main()
