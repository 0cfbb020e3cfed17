#!/bin/sh
# fit_report.sh NAME ELF MAP [SIZE] [NM]: the image's flash and RAM use against the FLASH / RAM regions its link map
# records (so the budgets are read from the linker script, never repeated here), plus a heap-less check: no
# malloc, free or _sbrk in the image. Exit status 1 if the image has a heap user.
set -eu
name=$1 elf=$2 map=$3 size=${4:-arm-none-eabi-size} nm=${5:-arm-none-eabi-nm}
region() { awk -v r="$1" '$1 == r { print $3; exit }' "$map"; }
flash_len=$(( $(region FLASH) ))
ram_len=$(( $(region RAM) ))
sec() { "$size" -A -d "$elf" | awk -v s="$1" '$1 == s { n = $2 } END { print n + 0 }'; }
text=$(( $(sec .text) + $(sec .ARM.extab) + $(sec .ARM.exidx) + $(sec .preinit_array) + $(sec .init_array) + $(sec .fini_array) ))
data=$(sec .data) bss=$(sec .bss) stack=$(sec .stack)
flash=$(( text + data ))   # code + constants (the model) + .data's load image
ram=$(( data + bss + stack ))
"$size" "$elf"
echo "$name: flash $flash of $flash_len B ($(( flash_len - flash )) B free), RAM $ram of $ram_len B (data $data + bss $bss + stack $stack; $(( ram_len - ram )) B free)"
if "$nm" "$elf" | grep -Eq ' (malloc|_malloc_r|free|_free_r|_sbrk|_sbrk_r)$'; then
    echo "$name: the image links a heap allocator (malloc/_sbrk); the demo must be heap-less" >&2
    exit 1
fi
