#!/usr/bin/env bash
# make test-wheel: the wheel is the whole tool, installed and run outside the checkout.
#   1. `pip wheel . --no-deps` (setuptools' build folders in the temp folder, not in the checkout)
#   2. a fresh venv in a temp folder outside the checkout: the CPU torch from requirements-torch.txt first (as `make
#      setup` does), then the wheel without extras, at requirements-lock.txt's versions
#   3. from another folder, with a fresh cache ($XDG_CACHE_HOME): edgemem --version; a tiny train (digits, LMU,
#      1 epoch); export --to onnx,c; verify --m4-windows 2 (C host and QEMU Cortex-M4 built from the packaged
#      firmware into the cache); the export moved away and verified with --checkpoint; the one-line errors of a
#      wrong checkpoint and of a missing extra; the demo's shared library and WebAssembly builds; nothing written
#      into site-packages.
# A missing tool skips with a message, except under CI=true: there it fails. Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3.11}

fail() { echo "test-wheel: FAILED: $*" >&2; exit 1; }
for tool in "$PYTHON" git make gcc arm-none-eabi-gcc arm-none-eabi-size arm-none-eabi-objdump qemu-system-arm clang-14; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then fail "$tool not found (CI=true)"; fi
    echo "test-wheel: $tool not found, skipped (make setup installs it)"
    exit 0
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgemem-wheel.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
case "$TMP/" in "$ROOT"/*) fail "the temp folder $TMP is inside the checkout";; esac
LOG=$TMP/log
T0=$(date +%s.%N)
last=$T0
TIMES=()
step() {  # step NAME: the time since the previous step
  local now; now=$(date +%s.%N)
  TIMES+=("$(awk -v a="$now" -v b="$last" -v n="$1" 'BEGIN { printf "%s %.1f s", n, a - b }')")
  last=$now
}
run() {  # run CMD...: quiet, its output shown when it fails
  "$@" >"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; fail "$*"; }
}
expect_error() {  # expect_error WORDS CMD...: exit 2 and one stderr line containing WORDS
  local words=$1; shift
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  local lines; lines=$(grep -c . "$TMP/err" || true)
  [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -qF -- "$words" "$TMP/err" ||
    { cat "$TMP/err" >&2; fail "$* : expected exit 2 and one line with '$words', got exit $rc, $lines lines"; }
}

# 1. the wheel (DIST_EXTRA_CONFIG: setuptools' build and egg-info folders in the temp folder; the checkout stays clean)
printf '[build]\nbuild_base = %s\n[egg_info]\negg_base = %s\n' "$TMP/setuptools" "$TMP" > "$TMP/setup.cfg"
mkdir -p "$TMP/setuptools"
DIST_EXTRA_CONFIG=$TMP/setup.cfg run "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$TMP/dist" .
WHEEL=$(ls "$TMP"/dist/edgemem-*.whl)
"$PYTHON" - "$WHEEL" <<'EOF' || fail "the wheel's contents"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["edgemem/_firmware/Makefile", "edgemem/_firmware/include/edgemem.h", "edgemem/_firmware/src/graph.c",
        "edgemem/_firmware/apps/em_run/em_run.c", "edgemem/_firmware/apps/har_demo/har_demo.mk",
        "edgemem/_firmware/targets/cortex_m4/run_qemu.sh", "edgemem/_firmware/targets/nrf52/nrf52832.ld",
        "edgemem/_build_info.json", "edgemem/demo/web/index.html"]
missing = [n for n in need if n not in names]
stray = [n for n in names if n.startswith("edgemem/_firmware/tests/") or "/build/" in n or n.endswith(".pyc")]
assert not missing and not stray, (missing, stray)
EOF
step "wheel"

# 2. a fresh venv outside the checkout: CPU torch first (as make setup), then the wheel with no extra at the lock
#    (--no-compile: Python compiles what it imports; byte-compiling all of torch up front made this step 74-92 s
#    instead of 18 s here, and removing the .pyc files another 50-60 s)
"$PYTHON" -m venv "$TMP/venv"
VPY=$TMP/venv/bin/python
run "$VPY" -m pip install -q --disable-pip-version-check --no-compile -r "$ROOT/requirements-torch.txt"
run "$VPY" -m pip install -q --disable-pip-version-check --no-compile -c "$ROOT/requirements-lock.txt" "$WHEEL"
step "venv"

# 3. from another folder, nothing of the checkout on the path, a fresh cache
WORK=$TMP/work
mkdir -p "$WORK"
cd "$WORK"
unset PYTHONPATH EDGEMEM_CACHE
export XDG_CACHE_HOME=$TMP/cache
EM=$TMP/venv/bin/edgemem
SITE=$("$VPY" -c 'import edgemem, pathlib; print(pathlib.Path(edgemem.__file__).parent)')
case "$SITE" in "$TMP/venv/"*) ;; *) fail "edgemem imports from $SITE, not the venv";; esac
listing() { (cd "$SITE" && find . -type f ! -name '*.pyc' -exec sha256sum {} + | sort); }
before=$(listing)

WANT=$("$PYTHON" -c "import ast,sys; t=open(sys.argv[1]).read(); print(ast.literal_eval(t.split('__version__ = ')[1].splitlines()[0]))" \
       "$ROOT/edgemem/__init__.py")
version=$("$EM" --version)
echo "test-wheel: $version"
case "$version" in "edgemem $WANT (commit "*"; extras: none)") ;; *) fail "--version printed '$version'";; esac
step "--version"

cat > recipe.yaml <<'EOF'
name: wheel_digits
data: {source: digits, window: 64, hop: 64, train_subjects: [1], val_subjects: [2], test_subjects: [3]}
model: {kind: lmu, readout: last, n_u: 1, order: 8, theta: 64.0, n_h: 16, act: tanh, memory_clip: 16.0}
train: {epochs: 1, batch_size: 32, lr: 0.02, threads: 1}
baselines: []
quant: {calib_windows: 16}
EOF
run "$EM" train recipe.yaml --out run
step "train"
run "$EM" export run/model.pt --to onnx,c --out export/wheel_digits
grep -q "^#define EM_TOOL_VERSION \"$WANT\"$" export/wheel_digits/model.h || fail "model.h has no EM_TOOL_VERSION $WANT"
"$VPY" -c "import json,sys; t=json.load(open('export/wheel_digits/meta.json'))['tool']; \
assert t['version'] == sys.argv[1] and t['commit'] not in ('', 'checkout'), t" "$WANT" || fail "meta.json tool"
step "export"
run "$EM" verify export/wheel_digits --m4-windows 2
grep -q "bit_exact=True" "$LOG" || { cat "$LOG"; fail "verify is not bit-exact"; }
BUILD=$(ls -d "$XDG_CACHE_HOME"/edgemem/firmware-"$WANT"-*)
[ -x "$BUILD/host/em_run" ] && [ -f "$BUILD/m4/em_run.elf" ] || fail "no firmware build in $BUILD"
step "verify"

# the export folder moved away from its checkpoint: the relative path is gone, --checkpoint brings it back
MOVED=$TMP/moved/wheel_digits
mkdir -p "$TMP/moved" && mv export/wheel_digits "$MOVED"
expect_error "--checkpoint" "$EM" verify "$MOVED"
"$VPY" -c "import sys; d = bytearray(open('run/model.pt', 'rb').read()); d[-30] ^= 1; open('other.pt', 'wb').write(d)"
expect_error "checkpoint_sha256" "$EM" verify "$MOVED" --checkpoint other.pt
run "$EM" verify "$MOVED" --checkpoint run/model.pt --m4-windows 1 --json
"$VPY" -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['bit_exact'], r" "$LOG" || fail "verify --checkpoint"
step "verify --checkpoint"

# the optional extras: one line naming the extra
expect_error "needs the tflite extra: pip install 'edgemem[tflite]'" "$EM" export run/model.pt --to c,tflite --out t
expect_error "needs the nir extra: pip install 'edgemem[nir]'" "$EM" export run/model.pt --to nir --out n
sed 's/source: digits, window: 64, hop: 64/source: basic_motions, window: 100, hop: 100/' recipe.yaml > bm.yaml
expect_error "needs the data extra: pip install 'edgemem[data]'" "$EM" train bm.yaml --out bm
printf 'space:\n  train.lr: {float: [0.01, 0.03]}\n' > space.yaml
expect_error "edgemem sweep needs the sweep extra: pip install 'edgemem[sweep]'" "$EM" sweep recipe.yaml --space space.yaml --out sw
[ ! -e t ] && [ ! -e n ] && [ ! -e bm/model.pt ] && [ ! -e sw ] || fail "a refused command wrote files"

# the demo's builds (ctypes shared library, WebAssembly) from the packaged firmware
run "$VPY" -c "from edgemem.demo.runtime import build_shared; from edgemem.verification.c_runtime import _make; \
build_shared(); _make('wasm')"
[ -f "$BUILD/host/libedgemem_app.so" ] && [ -f "$BUILD/wasm/edgemem.wasm" ] || fail "no shared/wasm build in $BUILD"
after=$(listing)
[ "$before" = "$after" ] || fail "files appeared or changed in $SITE"
step "extras and demo builds"

cd "$ROOT"
rm -rf "$TMP"  # the venv's thousands of files: counted too
step "cleanup"
TOTAL=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { print a - b }')
printf 'test-wheel: passed in %.0f s (' "$TOTAL"
for i in "${!TIMES[@]}"; do printf '%s%s' "$([ "$i" = 0 ] || echo '; ')" "${TIMES[$i]}"; done
printf ')\n'
