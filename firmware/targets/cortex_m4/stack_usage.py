#!/usr/bin/env python3
"""Worst-case stack depth of one function (and its deepest callee chain) on the Cortex-M4 build.

usage: stack_usage.py --root em_graph_step --elf LINKED.elf [--objdump TOOL] OBJ.o [OBJ.o ...]

Each OBJ.o must have been compiled with -fstack-usage -fcallgraph-info=su, so OBJ.ci sits next to it (gcc writes
the per-function frame size, as in the .su file, and the call edges of the translation unit into the .ci file).

Method (python3 standard library only):
  1. Frames and call edges of our code come from the .ci files: frame = gcc's -fstack-usage figure (callee-saved
     registers, lr, FP registers, locals, spills, outgoing arguments). A 'dynamic' frame (alloca/VLA) that gcc
     cannot bound is an error.
  2. Cross-check: objdump -dr of every OBJ.o; each R_ARM_THM_CALL / R_ARM_THM_JUMP24 relocation (bl, and b.w tail
     calls) to another function is added as an edge if the .ci lacks it (libcalls gcc emits late). An indirect
     call (blx rN / bx rN other than bx lr) in a function on the analysed graph is an error: its target is unknown.
  3. Functions with no frame size in any .ci (libc/libgcc, e.g. memset from newlib-nano) are measured from the
     linked ELF's disassembly: frame = every push/stmdb sp! (4 bytes a register), vpush/vstmdb sp! (4 bytes an
     s-register, 8 a d-register) and sub sp, #N in the function, summed (an upper bound); callees = its bl/b.w
     targets outside itself, recursively.
     A function whose gcc frame is 0 but whose code in the image pushes or moves sp (a naked function, such as
     the LMU kernel's asm rows: gcc does not see an asm prologue) is measured the same way.
  4. Depth(f) = frame(f) + max over callees of Depth(callee); recursion is an error. A tail call (b.w) is
     counted as if it were a call, which over-estimates by the caller's frame (none exist on em_graph_step's path today).
Not included: the frame of whoever calls the root, and exception/interrupt stacking on top of it (8 words, or 26
with the FPU context, plus the handler's own frames).
Prints the deepest chain, then exactly one line: "stack: ROOT N bytes". Exit status 1 if the depth is unbounded.
"""
import argparse
import os
import re
import subprocess
import sys


class Unbounded(Exception):
    pass


NODE_RE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
EDGE_RE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
SIZE_RE = re.compile(r"\\n(\d+) bytes \(([a-z, ]+)\)")


def parse_ci(path):
    """-> (frames {title: (bytes, qualifier)}, edges {title: set(title)}, names {title: plain name})"""
    frames, edges, names = {}, {}, {}
    with open(path) as f:
        for line in f:
            m = NODE_RE.search(line)
            if m:
                title, label = m.group(1), m.group(2)
                names[title] = label.split("\\n")[0]
                s = SIZE_RE.search(label)
                if s:
                    frames[title] = (int(s.group(1)), s.group(2))
                continue
            m = EDGE_RE.search(line)
            if m:
                edges.setdefault(m.group(1), set()).add(m.group(2))
    return frames, edges, names


def plain(title):
    """A static function's title is 'file.c:name'; a global's is its name."""
    return title.rsplit(":", 1)[-1]


FUNC_RE = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
RELOC_RE = re.compile(r"^\s*[0-9a-f]+: (R_ARM_THM_CALL|R_ARM_THM_JUMP24)\s+(\S+)")
INSN_RE = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{4} ?){1,2}\s+(\S+)\s*(.*)$")


def objdump_lines(objdump, args):
    out = subprocess.run([objdump] + args, check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    return out.splitlines()


def indirect(mnemonic, ops):
    mn = mnemonic.split(".")[0]
    if mn == "blx" and not ops.startswith("0x") and re.match(r"^(r\d+|ip|lr)\b", ops):
        return True
    return mn == "bx" and not ops.startswith("lr")


def obj_calls(objdump, obj):
    """{function: (set(call targets by relocation), has_indirect_call)} of one object file."""
    calls, cur = {}, None
    for line in objdump_lines(objdump, ["-dr", obj]):
        m = FUNC_RE.match(line)
        if m:
            cur = m.group(1)
            calls.setdefault(cur, [set(), False])
            continue
        if cur is None:
            continue
        m = RELOC_RE.match(line)
        if m:
            target = m.group(2).split("+")[0]
            if target != cur and not target.startswith("."):
                calls[cur][0].add(target)
            continue
        m = INSN_RE.match(line)
        if m and indirect(m.group(2), m.group(3)):
            calls[cur][1] = True
    return calls


def reg_count(reglist):
    """Registers in '{r4, r5, lr}' or '{d8-d11}' -> (count, bytes each)."""
    n, width = 0, 4
    for part in reglist.strip("{} ").split(","):
        part = part.strip()
        if not part:
            continue
        if part[0] == "d":
            width = 8
        if "-" in part:
            a, b = part.split("-")
            n += int(b.strip()[1:]) - int(a.strip()[1:]) + 1
        else:
            n += 1
    return n, width


def elf_functions(objdump, elf):
    """{name: (frame bytes upper bound, set(callees), has_indirect_call)} from the linked image."""
    funcs, cur, body = {}, None, []

    def finish():
        if cur is None:
            return
        frame, callees, ind = 0, set(), False
        for mnemonic, ops in body:
            mn = mnemonic.split(".")[0]
            if mn in ("push", "vpush"):
                n, w = reg_count(ops)
                frame += n * w
            elif mn in ("stmdb", "stmfd", "vstmdb") and ops.startswith("sp!"):
                n, w = reg_count(ops.split(",", 1)[1])
                frame += n * w
            elif mn in ("sub", "subw") and re.match(r"^sp, (sp, )?#(\d+)", ops):
                frame += int(re.match(r"^sp, (sp, )?#(\d+)", ops).group(2))
            elif mn == "bl" or re.match(r"^b(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?$", mn):
                t = re.search(r"<([^>+]+)(\+0x[0-9a-f]+)?>", ops)
                if t and t.group(1) != cur and not t.group(2):
                    callees.add(t.group(1))
            if indirect(mnemonic, ops):
                ind = True
        funcs[cur] = (frame, callees, ind)

    for line in objdump_lines(objdump, ["-d", elf]):
        m = FUNC_RE.match(line)
        if m:
            finish()
            cur, body = m.group(1), []
            continue
        m = INSN_RE.match(line)
        if m and cur is not None:
            body.append((m.group(2), m.group(3).split(";")[0].strip()))
    finish()
    return funcs


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--elf", required=True)
    ap.add_argument("--objdump", default="arm-none-eabi-objdump")
    ap.add_argument("objs", nargs="+")
    a = ap.parse_args(argv[1:])

    frames, edges, by_plain = {}, {}, {}
    for obj in a.objs:
        ci = os.path.splitext(obj)[0] + ".ci"
        if not os.path.exists(ci):
            sys.stderr.write(f"stack_usage: {ci} missing (compile with -fstack-usage -fcallgraph-info=su)\n")
            return 2
        fr, ed, _ = parse_ci(ci)
        frames.update(fr)
        for s, ts in ed.items():
            edges.setdefault(s, set()).update(ts)
        local = {plain(t): t for t in fr}
        # step 2: relocations of this object, resolved to this unit's titles first (static functions)
        for fn, (targets, ind) in obj_calls(a.objdump, obj).items():
            src = local.get(fn, fn)
            for t in targets:
                edges.setdefault(src, set()).add(local.get(t, t))
            if ind:
                edges.setdefault(src, set()).add("<indirect call>")
        for t in fr:
            by_plain.setdefault(plain(t), t)

    elf = elf_functions(a.objdump, a.elf)
    memo, notes = {}, []

    def depth(title, stack):
        if title in memo:
            return memo[title]
        if title in ("<indirect call>", "__indirect_call"):
            raise Unbounded(f"indirect call in {stack[-1]}: target unknown")
        if title in stack:
            raise Unbounded("recursion: " + " > ".join(stack + [title]))
        if title in frames and frames[title][0] == 0 and elf.get(plain(title), (0,))[0] > 0:
            # a naked function (its prologue is asm: gcc's figure is 0) that pushes: measured from the image
            size, callees = elf[plain(title)][0], edges.get(title, set())
            notes.append(f"{title} {size} bytes measured from the linked image's prologue (gcc reports 0: naked)")
        elif title in frames:
            size, qual = frames[title]
            if "dynamic" in qual and "bounded" not in qual:
                raise Unbounded(f"{title}: dynamic stack ({qual})")
            callees = edges.get(title, set())
        elif plain(title) in by_plain and by_plain[plain(title)] != title:
            return depth(by_plain[plain(title)], stack)
        elif plain(title) in elf:
            size, callees, ind = elf[plain(title)]
            if ind:
                raise Unbounded(f"indirect call in {title} (from the linked image)")
            notes.append(f"{title} {size} bytes measured from the linked image's prologue")
        else:
            raise Unbounded(f"{title}: no frame size in any .ci and not in {a.elf}")
        best, chain = 0, []
        for c in sorted(callees):
            d, ch = depth(c, stack + [title])
            if d > best:
                best, chain = d, ch
        memo[title] = (size + best, [(plain(title), size)] + chain)
        return memo[title]

    root = by_plain.get(a.root, a.root)
    try:
        total, chain = depth(root, [])
    except Unbounded as e:
        print(f"stack: {a.root} unbounded ({e})")
        return 1
    for n in sorted(set(notes)):
        print(f"  ({n})")
    print("  deepest chain, frame bytes: " + " > ".join(f"{n} {s}" for n, s in chain))
    print(f"stack: {a.root} {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
