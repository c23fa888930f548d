#!/usr/bin/env bash
# The main job on a bundled example: a venv with one legitimate hook (setuptools'
# distutils-precedence.pth, plus a path line) and one poisoned hook (a harmless stand-in that
# would print fake secrets), started through `sitegate exec`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sitegate="$here/../target/release/sitegate"
python=${PYTHON:-$(command -v python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$work/lib"
cp "$here/poisoned/app_helpers.py" "$work/lib/"
echo "$work/lib" > "$site/app_paths.pth"
cp "$here/poisoned/telemetry_boost.pth" "$site/"

echo "== sitegate scan"
"$sitegate" scan --python "$work/venv/bin/python" || echo "(scan exits 1: a hook is denied)"
echo
echo "== without sitegate (the poisoned hook runs; CPython 3.8 to 3.14 read a venv's"
echo "   site-packages twice, so it runs twice)"
OPENAI_API_KEY=sk-demo-not-a-real-key "$work/venv/bin/python" "$here/poisoned/app.py"
echo
echo "== sitegate exec (the poisoned hook is denied, the program runs)"
OPENAI_API_KEY=sk-demo-not-a-real-key "$sitegate" exec -- "$work/venv/bin/python" "$here/poisoned/app.py"
echo
echo "== sitegate explain (what the poisoned hook tries, evaluated in the WebAssembly sandbox)"
OPENAI_API_KEY=sk-demo-not-a-real-key "$sitegate" explain "$site/telemetry_boost.pth" --python "$work/venv/bin/python" || true
