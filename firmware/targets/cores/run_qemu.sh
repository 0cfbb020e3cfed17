#!/bin/sh
# Run a semihosting ELF built for one core (make cores) on its QEMU machine; returns the program's exit status.
#   run_qemu.sh CORE ELF [ARGS...]      CORE: m0 m3 m4 m7 m33 m55 rv32, or m0-an385 (the M0 build on mps2-an385)
# As targets/cortex_m4/run_qemu.sh: ARGS reach main() through the semihosting command line, argv[0] is the ELF's
# base name (rv32: picolibc's own), no spaces inside an argument, commas escaped. -icount shift=6 on every machine: deterministic, and the
# Arm cores count instructions with SysTick against it (rv32 reads minstret, which -icount ties to the instructions).
# rv32: picolibc's semihosting console output (stdout and stderr alike) arrives on QEMU's stderr.
# Env: QEMU_ARM, QEMU_RISCV32 (binaries), QEMU_TIMEOUT (seconds, default 300).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 CORE ELF [ARGS...]" >&2
    exit 2
fi
core=$1
elf=$2
shift 2
[ -f "$elf" ] || { echo "run_qemu.sh: no such ELF: $elf" >&2; exit 2; }
qemu=${QEMU_ARM:-qemu-system-arm}
case $core in
    m0) machine="-M microbit" ;;
    m3|m0-an385) machine="-M mps2-an385" ;;
    m4) machine="-M mps2-an386" ;;
    m7) machine="-M mps2-an500" ;;
    m33) machine="-M mps2-an505" ;;
    m55) machine="-M mps3-an547" ;;
    rv32) machine="-M virt -bios none"; qemu=${QEMU_RISCV32:-qemu-system-riscv32} ;;
    *) echo "run_qemu.sh: unknown core '$core' (m0 m3 m4 m7 m33 m55 rv32 m0-an385)" >&2; exit 2 ;;
esac
name=$(basename "$elf" .elf)
cfg="enable=on,target=native,arg=$name"
# picolibc's crt0-semihost (rv32) adds its own argv[0] before the command line: no name there
[ "$core" = rv32 ] && cfg="enable=on,target=native"
for a in "$@"; do
    case $a in
        *" "*) echo "run_qemu.sh: argument with a space cannot pass through semihosting: '$a'" >&2; exit 2 ;;
    esac
    cfg="$cfg,arg=$(printf '%s' "$a" | sed 's/,/,,/g')"
done
# stdin from /dev/null: the program reads no console input, and QEMU then cannot grab the terminal
# shellcheck disable=SC2086
exec timeout "${QEMU_TIMEOUT:-300}" "$qemu" $machine -nographic -monitor none \
    -semihosting-config "$cfg" -icount shift=6 -kernel "$elf" </dev/null
