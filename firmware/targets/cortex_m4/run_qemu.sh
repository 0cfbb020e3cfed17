#!/bin/sh
# Run a Cortex-M4 semihosting ELF on QEMU mps2-an386 and return the program's exit status.
#   run_qemu.sh ELF [ARGS...]
# ARGS reach main() through the semihosting command line (SYS_GET_CMDLINE): each becomes ",arg=..." of
# -semihosting-config, argv[0] is the ELF's base name. Paths are relative to the current directory.
# QEMU joins the args with spaces, so an argument may not contain a space; commas are escaped (",,").
# -icount shift=6: 64 ns of virtual time per instruction, deterministic (the instruction counts rely on it).
# Env: QEMU (binary), QEMU_TIMEOUT (seconds, default 300).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 ELF [ARGS...]" >&2
    exit 2
fi
elf=$1
shift
[ -f "$elf" ] || { echo "run_qemu.sh: no such ELF: $elf" >&2; exit 2; }
name=$(basename "$elf" .elf)
cfg="enable=on,target=native,arg=$name"
for a in "$@"; do
    case $a in
        *" "*) echo "run_qemu.sh: argument with a space cannot pass through semihosting: '$a'" >&2; exit 2 ;;
    esac
    cfg="$cfg,arg=$(printf '%s' "$a" | sed 's/,/,,/g')"
done
# stdin from /dev/null: the program reads no console input, and QEMU then cannot grab the terminal
exec timeout "${QEMU_TIMEOUT:-300}" "${QEMU:-qemu-system-arm}" -M mps2-an386 -nographic -monitor none \
    -semihosting-config "$cfg" -icount shift=6 -kernel "$elf" </dev/null
