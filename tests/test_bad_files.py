"""Truncated and edited files: one line naming the problem, exit status 2, no traceback, nothing half-written.

Each kind of damage goes through the CLI once or twice (a subprocess costs a torch import); the many variants behind
it (every truncation point, every field) run in-process against the function the CLI calls."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import CHECKPOINT, ROOT, SHIPPED, need
from edgemem.checkpoint import load_checkpoint
from edgemem.errors import EdgememError
from edgemem.exporters.folder import load_meta
from edgemem.graph.blob import (
    BUFFER_SIZE,
    HEADER_SIZE,
    OP_SIZE,
    RETIRED_VERSION_MESSAGE,
    TENSOR_SIZE,
    parse_graph_blob,
)
from edgemem.graph.check import GraphDefect

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEMEM, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_user_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    line = one_line(res.stderr)
    for w in words:
        assert w in line, line


def flipped(data: bytes, pos: int, mask: int = 0x5A) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def export_copy(tmp_path: Path, name: str = "copy") -> Path:
    """A copy of the shipped export whose meta.json still finds the checkpoint."""
    folder = tmp_path / name
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["checkpoint"] = str(CHECKPOINT.resolve())
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------------- checkpoint

CKPT = CHECKPOINT.read_bytes()


def _member_offset(name: str) -> int:
    """Offset of a member's data inside the checkpoint archive (torch stores members uncompressed)."""
    with zipfile.ZipFile(CHECKPOINT) as z:
        info = z.getinfo(name)
    name_len, extra_len = struct.unpack_from("<HH", CKPT, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len


def _biggest_weight() -> str:
    with zipfile.ZipFile(CHECKPOINT) as z:
        return max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size).filename


@pytest.mark.parametrize("damage", ["truncated_middle", "truncated_end", "flipped_weight"])
def test_export_rejects_a_damaged_checkpoint_and_writes_nothing(tmp_path, damage):
    if damage == "truncated_middle":
        data = CKPT[: len(CKPT) // 2]
    elif damage == "truncated_end":
        data = CKPT[:-10]  # the archive's end record is cut
    else:  # one bit in the weights: torch.load alone accepts this and exports a different model
        data = flipped(CKPT, _member_offset(_biggest_weight()) + 100, 0x01)
    bad = tmp_path / "model.pt"
    bad.write_bytes(data)
    out = tmp_path / "out"
    res = cli("export", str(bad), "--to", "onnx,c", "--out", str(out))
    assert_user_error(res, str(bad), "corrupt")
    assert not out.exists()


def test_every_damaged_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "model.pt"
    cases = {f"truncated at {n}": CKPT[:n] for n in (0, 1, 30, 200, 3000, 4200, 9000, 15000, 23000, len(CKPT) - 100,
                                                     len(CKPT) - 22, len(CKPT) - 1)}
    with zipfile.ZipFile(CHECKPOINT) as z:
        members = [i.filename for i in z.infolist()]
    for m in members:  # a flipped byte in every member: data.pkl, format/version records, every tensor
        cases[f"flip in {m}"] = flipped(CKPT, _member_offset(m))
    cases["flip in a local header's name"] = flipped(CKPT, 35)
    cases["garbage"] = bytes(range(256)) * 40
    cases["a zip of something else"] = _other_zip(tmp_path)
    for what, data in cases.items():
        bad.write_bytes(data)
        with pytest.raises(EdgememError) as e:
            load_checkpoint(bad)
        assert "\n" not in str(e.value) and str(bad) in str(e.value), (what, str(e.value))


def _other_zip(tmp_path: Path) -> bytes:
    p = tmp_path / "other.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")
    return p.read_bytes()


def test_intact_checkpoint_still_loads():
    ckpt = load_checkpoint(CHECKPOINT)
    assert ckpt.name == "har_l2mu" and len(ckpt.class_names) == 7


# ---------------------------------------------------------------------------------------------------- model.onnx

ONNX = (SHIPPED / "model.onnx").read_bytes()


def _unknown_op() -> bytes:
    i = ONNX.index(b"Unsqueeze")  # an op type (not a name): the edited graph names an operator that does not exist
    return ONNX[:i] + b"Unsqueezf" + ONNX[i + 9 :]


@pytest.mark.parametrize("damage", ["truncated", "unknown_operator"])
def test_verify_rejects_a_damaged_onnx_model(tmp_path, damage):
    folder = export_copy(tmp_path)
    (folder / "model.onnx").write_bytes(ONNX[: len(ONNX) // 2] if damage == "truncated" else _unknown_op())
    before = listing(folder)
    res = cli("verify", str(folder))  # every check runs before the first progress line
    assert_user_error(res, "model.onnx does not match meta.json (sha256 differs)")
    assert res.stdout == ""
    assert listing(folder) == before


def test_every_damaged_onnx_model_is_a_one_line_error(tmp_path):
    from edgemem.exporters.onnx_export import run_onnx

    ckpt = load_checkpoint(CHECKPOINT)
    names, shapes = load_meta(SHIPPED)["state_names"], ckpt.model.state_shapes()
    x = np.zeros((2, 3, ckpt.model.cfg.n_in), np.float32)
    path = tmp_path / "model.onnx"
    cases = {f"truncated at {n}": ONNX[:n] for n in (0, 1, 16, 500, 5000, len(ONNX) // 2, len(ONNX) - 1)}
    cases["unknown operator"] = _unknown_op()
    cases["garbage"] = bytes(range(256)) * 8
    cases["a flipped byte inside a tensor name (not UTF-8 any more)"] = flipped(ONNX, ONNX.index(b"mem_encoder_in"), 0xFF)
    for what, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(EdgememError, match=r"^model\.onnx is not a valid ONNX model \(") as e:
            run_onnx(path, x, names, shapes)
        assert "\n" not in str(e.value), what
    path.write_bytes(ONNX)
    with pytest.raises(EdgememError, match="not this model's step"):
        run_onnx(path, x, [*names[1:], names[0]], shapes)  # a valid graph, but meta.json's state order differs
    assert run_onnx(path, x, names, shapes).shape == (2, 3, 7)


# ---------------------------------------------------------------------------------------------------- model.bin

BLOB = (SHIPPED / "model.bin").read_bytes()
# graph blob layout (docs/graph.md): buffer table, op table, then the tensor table
_N_B, _N_OP = struct.unpack_from("<HH", BLOB, 22)
TENSORS_AT = HEADER_SIZE + BUFFER_SIZE * _N_B + OP_SIZE * _N_OP


def with_crc(blob: bytes) -> bytes:
    """Re-seal an edited payload, so the edit reaches the checks behind the CRC."""
    b = bytearray(blob)
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[HEADER_SIZE:])))
    return bytes(b)


def _edit_offset(blob: bytes, i: int, offset: int) -> bytes:
    b = bytearray(blob)
    struct.pack_into("<I", b, TENSORS_AT + TENSOR_SIZE * i + 4, offset)
    return with_crc(bytes(b))


def _version_1(blob: bytes) -> bytes:
    """A blob as the retired fixed-L2MU format wrote it: magic, version 1, a 64-byte header."""
    return blob[:4] + struct.pack("<H", 1) + blob[6:]


# (python message words, em_run message words); every other malformed graph blob: tests/test_graph.py MALFORMED
BAD_BLOBS = {
    "truncated": (BLOB[: len(BLOB) // 2], "truncated", "blob truncated"),
    "crc": (flipped(BLOB, len(BLOB) - 7), "CRC-32", "CRC-32 mismatch"),
    "version": (BLOB[:4] + struct.pack("<H", 3) + BLOB[6:], "version 3", "unsupported blob version"),
    "offset": (_edit_offset(BLOB, 5, len(BLOB) + 64), "outside the blob", "tensor outside the blob"),
    "version 1": (_version_1(BLOB), "version 1 is no longer supported", "version 1 is no longer supported"),
}


@pytest.mark.parametrize("damage", list(BAD_BLOBS))
def test_verify_rejects_a_damaged_blob(tmp_path, damage):
    blob, words, _ = BAD_BLOBS[damage]
    folder = export_copy(tmp_path)
    (folder / "model.bin").write_bytes(blob)
    before = listing(folder)
    res = cli("verify", str(folder))
    assert_user_error(res, "model blob", words)
    assert listing(folder) == before


def test_a_version_1_blob_says_how_to_re_export():
    with pytest.raises(GraphDefect) as e:
        parse_graph_blob(_version_1(BLOB))
    assert e.value.status == "VERSION" and str(e.value) == RETIRED_VERSION_MESSAGE
    with pytest.raises(GraphDefect, match="version 1 is no longer supported"):
        parse_graph_blob(_version_1(BLOB)[:10])  # refused before any size check, as the runtime does


def test_em_run_rejects_the_same_blobs(tmp_path):
    need("gcc", "make")
    from edgemem.verification.c_runtime import build_host

    exe = build_host()
    inp = tmp_path / "in.bin"
    inp.write_bytes(bytes(6 * 10))
    out = tmp_path / "out.bin"
    bad = tmp_path / "model.bin"
    for what, (blob, _, words) in BAD_BLOBS.items():
        bad.write_bytes(blob)
        res = subprocess.run([str(exe), str(bad), str(inp), str(out), "10"], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 2, (what, res.returncode, res.stderr)
        line = one_line(res.stderr)
        assert line.startswith("em_run:") and words in line, (what, line)
        assert not out.exists(), what
    bad.write_bytes(BLOB)  # the intact blob still runs
    res = subprocess.run([str(exe), str(bad), str(inp), str(out), "10"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and out.stat().st_size == 10 * 7 * 2, res.stderr


# ---------------------------------------------------------------------------------------------------- meta.json

@pytest.mark.parametrize("damage", ["missing_field", "not_json"])
def test_verify_rejects_a_damaged_meta_json(tmp_path, damage):
    folder = export_copy(tmp_path)
    if damage == "missing_field":
        meta = json.loads((folder / "meta.json").read_text())
        del meta["readout"]
        (folder / "meta.json").write_text(json.dumps(meta))
        words = "has no 'readout' field"
    else:
        (folder / "meta.json").write_text((folder / "meta.json").read_text()[:-40])
        words = "is not valid JSON"
    before = listing(folder)
    assert_user_error(cli("verify", str(folder)), "meta.json", words)
    assert listing(folder) == before


def test_load_meta_names_every_missing_or_mistyped_field(tmp_path):
    folder = export_copy(tmp_path)
    path = folder / "meta.json"
    good = json.loads(path.read_text())
    assert load_meta(folder) == good

    def check(text: str | bytes, words: str) -> None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(EdgememError) as e:
            load_meta(folder)
        assert words in str(e.value) and "\n" not in str(e.value), (words, str(e.value))

    for key in good:
        if key in ("format", "version", "tool"):  # "tool" is optional (older exports); tests/test_packaging.py
            continue
        check(json.dumps({k: v for k, v in good.items() if k != key}), f"has no '{key}' field")
    for key, value in (("input_scale", "0.06"), ("input_scale", -1.0), ("output_scale", None), ("window", 1.5),
                       ("state_names", "mem_encoder"), ("checkpoint", 3), ("readout", "mean"),
                       ("arena_bytes", True), ("class_names", [1, 2])):
        check(json.dumps({**good, key: value}), f"field '{key}' must be")
    check(json.dumps({**good, "input_scale": float("nan")}), "field 'input_scale' must be")  # NaN: JSON extension
    for text in ("[1, 2]", "3", "null", '"meta"', json.dumps({**good, "version": 2})):
        check(text, "is not an edgemem export of format version 1")
    for text in ("", "{", "{'format': 1}", b"\xff\xfe\x00garbage", "[" * 100_000):
        check(text, "is not valid JSON")
    # an export of the retired blob version 1: its meta.json had population_scales and no readout
    v1 = {k: v for k, v in good.items() if k != "readout"}
    check(json.dumps({**v1, "population_scales": {"encoder": 1.0, "memory": 1.0, "hidden": 1.0}}),
          "version 1 is no longer supported")


# ---------------------------------------------------------------------------------------- verify trusts nothing

def test_check_hashes_refuses_what_it_cannot_check(tmp_path):
    from edgemem.exporters.folder import check_hashes

    folder = export_copy(tmp_path)
    meta = load_meta(folder)
    check_hashes(folder, meta)  # the intact copy

    def refused(files: dict, words: str) -> None:
        with pytest.raises(EdgememError) as e:
            check_hashes(folder, {**meta, "files": files})
        assert words in str(e.value) and "\n" not in str(e.value), (files, str(e.value))

    refused({}, "lists no files")
    outside = tmp_path / "x"
    outside.write_bytes(BLOB)
    digest = meta["files"]["model.bin"]
    for name in ("../x", str(outside), "sub/../../x", "..", ".", ""):
        refused({**meta["files"], name: digest}, "not a plain file name in the folder")
    refused({k: v for k, v in meta["files"].items() if k != "model.tflite"}, "does not list model.tflite")
    refused({k: v for k, v in meta["files"].items() if k != "model.bin"}, "does not list model.bin")
    (folder / "model.bin").unlink()
    (folder / "model.bin").symlink_to(outside)  # the same bytes, but not the folder's own file
    refused(meta["files"], "is a symbolic link")
    # verify checks the names before it reads anything: a link to /dev/zero would never end
    from edgemem.verification.run import verify

    (folder / "model.bin").unlink()
    (folder / "model.bin").symlink_to("/dev/zero")
    with pytest.raises(EdgememError, match="model.bin is a symbolic link"):
        verify(folder)
    (folder / "model.bin").unlink()
    (folder / "model.bin").mkdir()
    refused(meta["files"], "model.bin is not a regular file")


def test_verify_refuses_an_empty_file_list_and_a_negative_window_count(tmp_path):
    folder = export_copy(tmp_path)
    res = cli("verify", str(folder), "--m4-windows", "-1")  # once reported "-1 windows, bit-exact"
    assert_user_error(res, "--m4-windows must be a positive number of windows, got -1")
    assert res.stdout == ""
    assert_user_error(cli("verify", str(folder), "--m4-windows", "0"), "--m4-windows")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "files": {}}))
    before = listing(folder)
    res = cli("verify", str(folder))
    assert_user_error(res, "lists no files")
    assert res.stdout == "" and listing(folder) == before


def test_warnings_before_the_error_line_are_dropped():
    code = """if True:
        import sys, warnings
        from types import SimpleNamespace

        from edgemem import api, cli
        from edgemem.errors import EdgememError

        def fake(*_a, **_k):
            warnings.warn("overflow encountered in divide", RuntimeWarning)
            if sys.argv[2] == "bad":
                raise EdgememError("the one problem")
            return SimpleNamespace(raw={"bit_exact": True})

        api.verify = fake
        cli._table = lambda r: ""
        cli.entry()
    """
    for arg, rc in (("bad", 2), ("good", 0)):
        res = subprocess.run([sys.executable, "-c", code, "verify", arg, "--json"], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert res.returncode == rc, res.stderr
        if rc == 2:
            assert res.stderr == "error: the one problem\n", res.stderr
        else:  # a command that succeeds still shows its warnings
            assert "RuntimeWarning: overflow encountered in divide" in res.stderr, res.stderr


# ------------------------------------------------------------------------------------------------ em_run files

def _em_run(exe: Path, *args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    def small_files() -> None:  # RLIMIT_FSIZE: a write past the limit fails (EFBIG), like a full disk
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files if limit_bytes else None)


def test_em_run_failed_write_leaves_the_old_output_and_no_partial_file(em_run, tmp_path):
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    inp.write_bytes(bytes(range(256)) * 24)  # 1,024 steps of 6 channels -> 14,336 output bytes
    out.write_bytes(b"the previous run's output")
    res = _em_run(em_run, str(SHIPPED / "model.bin"), str(inp), str(out), "100", limit_bytes=4000)
    assert res.returncode == 2 and one_line(res.stderr).startswith("em_run:"), res.stderr
    assert out.read_bytes() == b"the previous run's output" and sorted(p.name for p in tmp_path.iterdir()) == [
        "in.bin", "out.bin"]
    res = _em_run(em_run, str(SHIPPED / "model.bin"), str(inp), str(out), "100")
    assert res.returncode == 0 and out.stat().st_size == 1024 * 7 * 2 and res.stdout.strip() == "steps=1024"
    assert not (tmp_path / "out.bin.tmp").exists()


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom", "empty"])
def test_em_run_refuses_an_empty_or_unsized_input(em_run, tmp_path, source):
    inp = tmp_path / "empty.bin" if source == "empty" else Path(source)
    if source == "empty":
        inp.write_bytes(b"")
    out = tmp_path / "out.bin"
    res = _em_run(em_run, str(SHIPPED / "model.bin"), str(inp), str(out), "10")
    assert res.returncode == 2 and res.stdout == "", (res.returncode, res.stdout)  # never "steps=0", exit 0
    assert "input is empty or not a regular file" in one_line(res.stderr)
    assert not out.exists()


def test_em_run_refuses_bytes_after_the_declared_size_as_python_does(em_run, tmp_path):
    """One rule for a model file: bytes after total_size are refused by parse_graph_blob (TRAILING) and by em_run,
    at the same point of the order (a CRC error behind them is not reached); em_graph_parse on a buffer accepts
    them (docs/graph.md, parse step 1)."""
    inp = tmp_path / "in.bin"
    inp.write_bytes(bytes(60))
    for extra, blob in (("padding", BLOB + bytes(5)), ("padding and a bad CRC", flipped(BLOB, 100) + bytes(5))):
        with pytest.raises(GraphDefect, match="has 5 bytes after its declared size") as e:
            parse_graph_blob(blob)
        assert e.value.status == "TRAILING", extra
        (tmp_path / "m.bin").write_bytes(blob)
        res = _em_run(em_run, str(tmp_path / "m.bin"), str(inp), str(tmp_path / "o.bin"), "10")
        assert res.returncode == 2, (extra, res.stderr)
        assert "bad model blob: the file has 5 bytes after its declared size" in one_line(res.stderr), extra
    # errors before that point keep their own status, as in Python
    (tmp_path / "m.bin").write_bytes(b"XXXX" + BLOB[4:] + bytes(5))
    res = _em_run(em_run, str(tmp_path / "m.bin"), str(inp), str(tmp_path / "o.bin"), "10")
    assert "bad magic" in one_line(res.stderr)


# ------------------------------------------------------------------------------------ inconsistent checkpoints

@pytest.mark.parametrize("damage,words", [
    ("one_class_name", "has 1 class names for a model of 7 outputs"),
    ("short_std", "the normalizer's std has 2 values for a model of 6 inputs"),
    ("nan_mean", "the normalizer's mean is not finite"),
    ("zero_std", "the normalizer's std must be positive"),
])
def test_export_of_an_inconsistent_checkpoint_is_one_line_and_writes_nothing(tmp_path, damage, words):
    """Such a checkpoint used to export broken C: EM_MODEL_CLASS_NAMES indexed past its end, `nanf` in model.h."""
    from edgemem.checkpoint import save_checkpoint
    from edgemem.data.windows import Normalizer

    ckpt = load_checkpoint(ROOT / "models" / "har_elm" / "model.pt")
    mean, std = ckpt.normalizer.mean.copy(), ckpt.normalizer.std.copy()
    if damage == "one_class_name":
        ckpt.class_names = ckpt.class_names[:1]
    elif damage == "short_std":
        std = std[:2]
    elif damage == "nan_mean":
        mean[3] = np.nan
    else:
        std[0] = 0.0
    ckpt.normalizer = Normalizer(mean, std)
    path = tmp_path / "models" / "bad" / "model.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, ckpt)
    res = cli("export", str(path), "--to", "c", "--out", str(tmp_path / "out"))
    assert_user_error(res, words)
    assert not (tmp_path / "out").exists()
