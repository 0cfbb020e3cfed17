#!/usr/bin/env bash
# Installs only the Debian packages whose tool is missing (or, with --print, lists them).
# Asking apt for a package that is already provided another way can stop the whole install: where Node.js comes from
# its own packages it ships npm, and Debian's npm then conflicts ("held broken packages"). So each package is asked
# for only when its probe fails: a probe is a command on PATH or an absolute path (a glob is allowed).
set -euo pipefail

# package            probe
REQUIREMENTS=(
  "gcc-arm-none-eabi       arm-none-eabi-gcc"
  "libnewlib-arm-none-eabi /usr/lib/arm-none-eabi/newlib/libc.a"
  "qemu-system-arm         qemu-system-arm"
  "gcc                     gcc"
  "make                    make"
  "clang                   clang"
  "libclang-rt-14-dev      /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a"
  "espeak-ng               espeak-ng"
  "valgrind                valgrind"
  "lld-14                  wasm-ld-14"
  "chromium                chromium"
  "npm                     npm"
  "gcc-riscv64-unknown-elf riscv64-unknown-elf-gcc"
  "picolibc-riscv64-unknown-elf /usr/lib/picolibc/riscv64-unknown-elf/lib/libc.a"
  "qemu-system-misc        qemu-system-riscv32"
)

# APT_PROBE_ROOT prefixes the absolute probes (tests point it at a fake root; empty on a real machine)
root=${APT_PROBE_ROOT:-}

present() {  # probe -> status 0 when the tool or file is there
  local probe=$1
  if [[ $probe == /* ]]; then
    compgen -G "$root$probe" >/dev/null
  else
    command -v "$probe" >/dev/null
  fi
}

missing=()
for line in "${REQUIREMENTS[@]}"; do
  read -r pkg probe <<<"$line"
  present "$probe" || missing+=("$pkg")
done

if [[ ${1:-} == --print ]]; then
  printf '%s\n' "${missing[@]+"${missing[@]}"}"
  exit 0
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=""
[[ $(id -u) == 0 ]] || sudo=sudo
echo "installing missing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
