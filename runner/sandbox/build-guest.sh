#!/usr/bin/env bash
# Builds the sandbox guest: the Python source in `wit/guest/` and the world in `wit/`,
# compiled by componentize-py (pinned by hash in `runner/sandbox/requirements.txt`) into
# `target/sandbox/guest.wasm`. The component is an artefact of set-up, never committed.
#
# Usage: runner/sandbox/build-guest.sh [PYTHON]   (PYTHON runs the tool; default python3)
set -euo pipefail
cd "$(dirname "$0")/../.."

python="${1:-python3}"
tools="target/sandbox/tools"
output="target/sandbox/guest.wasm"
requirements="runner/sandbox/requirements.txt"

# The tool's venv is rebuilt whenever the pinned requirements change.
stamp="$tools/requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$tools/bin/componentize-py" || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    rm -rf "$tools"
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r "$requirements"
    echo "$wanted" >"$stamp"
fi

# Skip the build when neither the world nor the guest source changed since the last one.
inputs="$(cat wit/*.wit wit/guest/*.py "$requirements" "$0" | sha256sum | cut -d' ' -f1)"
if [[ -f "$output" && "$(cat "$output.inputs" 2>/dev/null)" == "$inputs" ]]; then
    exit 0
fi

# An empty environment while building: componentize-py snapshots the interpreter after the
# guest module's top level ran, and nothing of the build machine's environment may end up in
# that snapshot.
# The guest source is copied into target/ first: componentize-py writes a __pycache__ beside
# the source it compiles, and the source tree stays clean.
mkdir -p "$(dirname "$output")"
source_copy="target/sandbox/source"
rm -rf "$source_copy"
cp -r wit/guest "$source_copy"
rm -rf "$source_copy/__pycache__"
env -i PATH="$PATH" HOME="$PWD/target/sandbox" PYTHONDONTWRITEBYTECODE=1 \
    "$tools/bin/componentize-py" -d wit -w sitegate:sandbox/hook-sandbox@0.1.0 \
    componentize -p "$source_copy" guest -o "$output.partial"
mv "$output.partial" "$output"
echo "$inputs" >"$output.inputs"
