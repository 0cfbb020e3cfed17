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
