#!/bin/sh
# Runs fuzz_model for SECONDS on CORPUS (single process) and ends with one line
#   fuzz: E executions, C crashes
# E = libFuzzer's stat::number_of_executed_units, C = crash/leak/timeout/oom artifacts written by this run.
# Artifacts go to a fresh folder first (-artifact_prefix) and are then copied into REGRESSIONS.
# Exit status: 0 if C == 0, 1 otherwise (2 on a usage or setup error).
# usage: run_fuzz.sh FUZZER CORPUS REGRESSIONS SECONDS WORKDIR
set -u
if [ $# -ne 5 ]; then echo "usage: $0 FUZZER CORPUS REGRESSIONS SECONDS WORKDIR" >&2; exit 2; fi
fuzzer=$1 corpus=$2 regressions=$3 seconds=$4 work=$5
art=$work/artifacts
log=$work/fuzz.log
rm -rf "$art" && mkdir -p "$art" "$regressions" "$corpus" || exit 2

# -timeout: one input over 10 s is a hang; -rss_limit_mb: libFuzzer's default (2048) made explicit.
"$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$art/" "$corpus" >"$log" 2>&1
rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ -z "$execs" ]; then # no final stats (killed hard): the last "#N" status line
    execs=$(sed -n 's/^#\([0-9][0-9]*\)[^0-9].*/\1/p' "$log" | tail -n 1)
fi
[ -n "$execs" ] || execs=0
rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)

crashes=0
for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
    [ -f "$f" ] || continue
    crashes=$((crashes + 1))
    cp "$f" "$regressions/" && echo "fuzz: saved $regressions/$(basename "$f")"
done
if [ "$crashes" -eq 0 ] && [ "$rc" -ne 0 ]; then
    # libFuzzer failed without leaving an artifact (e.g. could not start): count it, show why
    tail -n 20 "$log"
    crashes=1
fi
if [ "$crashes" -gt 0 ]; then
    echo "---- fuzzer report (full log: $log) ----"
    grep -E 'ERROR|SUMMARY|contract violated|#[0-9]+ 0x' "$log" | head -n 40
fi
echo "fuzz: log $log, ${rate:-?} exec/s, corpus $(ls "$corpus" | wc -l) files"
echo "fuzz: $execs executions, $crashes crashes"
[ "$crashes" -eq 0 ]
