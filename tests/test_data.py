import numpy as np
import pytest

from edgemem.data.sources import load_basic_motions, load_npz, load_source, load_watch
from edgemem.data.windows import Normalizer, cut_windows, cv_folds, split_by_subject
from edgemem.errors import EdgememError


@pytest.fixture(scope="module")
def watch():
    return load_watch()


def test_watch_is_the_real_smartwatch_set(watch):
    assert len(watch.series) == 140
    assert all(s.shape[1] == 6 for s in watch.series)
    assert sorted(set(watch.subjects.tolist())) == list(range(1, 11))
    assert watch.class_names == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert watch.sample_rate_hz == 50.0


def test_windows_are_2s_with_50_percent_overlap(watch):
    w = cut_windows(watch, window=100, hop=50)
    assert w.x.shape[1:] == (100, 6)
    i = np.flatnonzero(w.recording == 0)[:2]
    np.testing.assert_array_equal(w.x[i[0], 50:], w.x[i[1], :50])
    np.testing.assert_array_equal(w.start[i], [0, 50])


def test_split_never_shares_a_subject(watch):
    w = cut_windows(watch, 100, 50)
    s = split_by_subject(w, [1, 2, 3, 4, 5, 6, 7], [8], [9, 10])
    assert set(s.train.subject) == set(range(1, 8))
    assert set(s.val.subject) == {8} and set(s.test.subject) == {9, 10}
    assert len(s.train) + len(s.val) + len(s.test) == len(w)
    with pytest.raises(EdgememError, match="both the train and test"):
        split_by_subject(w, [1, 2, 9], [8], [9, 10])


def test_cv_fold_k_tests_subjects_2k_plus_1_and_2k_plus_2():
    folds = cv_folds(list(range(1, 11)), 5)
    assert [test for _, test in folds] == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    for train, test in folds:
        assert not set(train) & set(test) and len(train) == 8
    with pytest.raises(EdgememError):
        cv_folds(list(range(1, 11)), 3)


def test_normalizer_round_trips_through_a_dict(rng):
    x = rng.normal(3.0, 2.0, size=(50, 20, 6)).astype(np.float32)
    n = Normalizer.fit(x)
    z = n(x)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3
    np.testing.assert_array_equal(Normalizer.from_dict(n.to_dict())(x), z)


def test_basic_motions_smoke():
    rec = load_basic_motions()
    assert len(rec.series) == 80 and rec.series[0].shape == (100, 6) and len(rec.class_names) == 4


def test_user_npz_is_loaded_and_validated(tmp_path, rng):
    good = tmp_path / "good.npz"
    np.savez(good, X=rng.normal(size=(8, 30, 3)), y=np.arange(8) % 2, subject=np.arange(8) // 4 + 1,
             class_names=np.array(["rest", "walk"]))
    rec = load_npz(good)
    assert rec.class_names == ["rest", "walk"] and rec.subjects.tolist() == [1] * 4 + [2] * 4
    cases = {
        "missing.npz": None,
        "noy.npz": {"X": rng.normal(size=(4, 5, 2))},
        "shape.npz": {"X": rng.normal(size=(4, 5)), "y": np.zeros(4, dtype=int)},
        "floaty.npz": {"X": rng.normal(size=(4, 5, 2)), "y": np.zeros(4)},
        "nan.npz": {"X": np.full((4, 5, 2), np.nan), "y": np.zeros(4, dtype=int)},
        "names.npz": {"X": rng.normal(size=(4, 5, 2)), "y": np.arange(4), "class_names": np.array(["a"])},
    }
    for name, arrays in cases.items():
        path = tmp_path / name
        if arrays is not None:
            np.savez(path, **arrays)
        with pytest.raises(EdgememError, match=str(path.name)):
            load_npz(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EdgememError, match="not a readable"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(EdgememError, match="unknown data source"):
        load_source("imagenet")


# ------------------------------------------------------------------------------- own data: lengths and bad files

def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_lengths_keep_padding_out_of_windows_and_statistics(tmp_path, rng):
    """X zero-padded to the longest recording with lengths[i] valid steps (the padding here is huge and NaN, so any
    leak shows); the flat form (recordings back to back) gives the same recordings."""
    from edgemem.data.windows import Normalizer, cut_windows

    lengths = np.array([12, 30, 17, 25])
    x = np.full((4, 30, 2), np.nan)
    x[:, :, 1] = 1e9
    parts = [rng.normal(size=(n, 2)) for n in lengths]
    for i, p in enumerate(parts):
        x[i, : len(p)] = p
    y, subject = np.array([0, 1, 0, 1]), np.array([1, 1, 2, 2])
    rec = load_npz(_npz(tmp_path / "pad.npz", X=x, y=y, subject=subject, lengths=lengths))
    assert [s.shape[0] for s in rec.series] == lengths.tolist()
    flat = load_npz(_npz(tmp_path / "flat.npz", X=np.concatenate(parts), y=y, subject=subject, lengths=lengths))
    for a, b in zip(rec.series, flat.series):
        np.testing.assert_array_equal(a, b)
    w = cut_windows(rec, 10, 5)
    assert np.isfinite(w.x).all() and np.abs(w.x).max() < 100  # no padding in any window
    assert (w.start + 10 <= lengths[w.recording]).all()
    for i in range(len(w)):  # the last step of every window (a `readout: last` model's) is a valid sample
        np.testing.assert_array_equal(w.x[i, -1], parts[w.recording[i]][w.start[i] + 9].astype(np.float32))
    norm = Normalizer.fit(w.x)
    valid = np.concatenate([w.x[i] for i in range(len(w))])
    np.testing.assert_allclose(norm.mean, valid.mean(axis=0), rtol=1e-5)


@pytest.mark.parametrize("arrays,words", [
    ({"X": "ragged", "y": np.array([0, 1])}, "array of Python objects: save recordings of different lengths"),
    ({"X": np.zeros((3, 5, 2)), "y": np.array([1, 2, 1])}, "start at 1 (no recording has label 0)"),
    ({"X": np.zeros((3, 5, 2)), "y": np.array([0, 2, 0])}, "skip [1]"),
    ({"X": np.zeros((0, 5, 2)), "y": np.zeros(0, dtype=int)}, "X holds no recordings"),
    ({"X": np.zeros((2, 0, 2)), "y": np.array([0, 1])}, "X's recordings have no time steps"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 10**12])}, "at most 1024 classes"),
    ({"X": np.zeros((2, 5, 2000)), "y": np.array([0, 1])}, "X has 2000 channels"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 1]), "subject": np.array(["a", "b"])}, "subject must be integers"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 1]), "subject": np.array([1.0, 2.7])}, "astype(int)"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 1]), "lengths": np.array([3, 6])}, "X is padded to 5"),
    ({"X": np.zeros((7, 2)), "y": np.array([0, 1]), "lengths": np.array([3, 3])}, "lengths sum to 6 but X has 7"),
    ({"X": np.zeros((7, 2)), "y": np.array([0, 1])}, "concatenated recordings need lengths"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 1]), "lenghts": np.array([3, 5])}, "holds 'lenghts'"),
    ({"X": np.zeros((2, 5, 2)), "y": np.array([0, 1]), "class_names": np.array([1, 2])}, "class_names must be strings"),
    ({"X": np.full((2, 5, 2), np.nan), "y": np.array([0, 1]), "lengths": np.array([5, 1])}, "NaN or infinite values"),
])
def test_bad_npz_files_are_one_line_errors(tmp_path, arrays, words):
    if isinstance(arrays["X"], str):
        arrays = {**arrays, "X": np.array([np.zeros((4, 2)), np.zeros((6, 2))], dtype=object)}
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(EdgememError) as e:
        load_npz(path)
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "allow_pickle" not in msg, msg


def test_npy_garbage_and_lying_npz_files(tmp_path):
    import io
    import zipfile

    np.save(tmp_path / "x.npy", np.zeros((2, 5, 2)))
    with pytest.raises(EdgememError, match=r"is a single \.npy array; edgemem reads an \.npz archive .* X float "
                                           r"\[recordings\]\[time\]\[channels\]"):
        load_npz(tmp_path / "x.npy")
    for junk in (b"not a zip", b"PK\x03\x04garbage" * 10):
        (tmp_path / "junk.npz").write_bytes(junk)
        with pytest.raises(EdgememError, match="not a readable .npz") as e:
            load_npz(tmp_path / "junk.npz")
        assert "allow_pickle" not in str(e.value)
    header = io.BytesIO()  # a header declaring 10^12 x 5 x 2 floats over 80 bytes of data
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 5, 2)})
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as z:
        z.writestr("X.npy", header.getvalue() + bytes(80))
        buf = io.BytesIO()
        np.save(buf, np.zeros(2, dtype=np.int64))
        z.writestr("y.npy", buf.getvalue())
    with pytest.raises(EdgememError, match=r"'X' declares shape \(1000000000000, 5, 2\)"):
        load_npz(tmp_path / "lie.npz")
