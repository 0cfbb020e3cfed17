"""Windows over recordings, subject splits and normalization statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError


@dataclass(frozen=True)
class Recordings:
    """Variable-length recordings, one label and one subject each."""

    series: list[np.ndarray]  # each [T_i][channels], float32
    labels: np.ndarray  # [n] int64
    subjects: np.ndarray  # [n] int64
    class_names: list[str]
    sample_rate_hz: float


@dataclass(frozen=True)
class Windows:
    """Fixed-length windows cut from recordings."""

    x: np.ndarray  # [n][window][channels] float32
    y: np.ndarray  # [n] int64
    subject: np.ndarray  # [n] int64
    recording: np.ndarray  # [n] int64, index of the source recording
    start: np.ndarray  # [n] int64, first sample of the window in its recording

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def select(self, mask: np.ndarray) -> Windows:
        return Windows(self.x[mask], self.y[mask], self.subject[mask], self.recording[mask], self.start[mask])

    def of_subjects(self, subjects: list[int]) -> Windows:
        return self.select(np.isin(self.subject, np.asarray(subjects, dtype=np.int64)))


def cut_windows(rec: Recordings, window: int, hop: int, downsample: int = 1) -> Windows:
    """Cut every recording into windows of `window` samples every `hop` samples (tail dropped); then average
    every `downsample` samples, so a window has window / downsample steps. A recording shorter than `window` gives
    no window; a window never extends past its recording's last sample (padding of an .npz never enters one)."""
    if window <= 0 or hop <= 0 or downsample <= 0:
        raise EdgememError(f"window ({window}), hop ({hop}) and downsample ({downsample}) must be positive")
    if window % downsample:
        raise EdgememError(f"window ({window}) must be a multiple of downsample ({downsample})")
    xs, ys, ss, rs, st = [], [], [], [], []
    for i, series in enumerate(rec.series):
        for start in range(0, series.shape[0] - window + 1, hop):
            xs.append(series[start : start + window])
            ys.append(rec.labels[i])
            ss.append(rec.subjects[i])
            rs.append(i)
            st.append(start)
    if not xs:
        longest = max((s.shape[0] for s in rec.series), default=0)
        raise EdgememError(f"no recording is at least {window} samples long (data.window; the longest has {longest})")
    x = np.stack(xs).astype(np.float32)
    if downsample > 1:
        x = x.reshape(x.shape[0], window // downsample, downsample, x.shape[2]).mean(axis=2, dtype=np.float32)
    return Windows(
        x,
        np.asarray(ys, dtype=np.int64),
        np.asarray(ss, dtype=np.int64),
        np.asarray(rs, dtype=np.int64),
        np.asarray(st, dtype=np.int64),
    )


@dataclass(frozen=True)
class Split:
    train: Windows
    val: Windows
    test: Windows


def split_by_subject(w: Windows, train: list[int], val: list[int], test: list[int]) -> Split:
    """Split windows so that no subject appears in two parts (checked, not assumed)."""
    sets = {"train": set(train), "val": set(val), "test": set(test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sets[a] & sets[b]
        if both:
            raise EdgememError(f"subjects {sorted(both)} are in both the {a} and {b} split")
    parts = {name: w.of_subjects(sorted(s)) for name, s in sets.items()}
    for name, part in parts.items():
        if name != "val" and len(part) == 0:
            raise EdgememError(f"the {name} split (subjects {sorted(sets[name])}) has no windows")
    return Split(parts["train"], parts["val"], parts["test"])


def cv_folds(subjects: list[int], folds: int) -> list[tuple[list[int], list[int]]]:
    """Leave-k-subjects-out folds: fold k tests the k-th consecutive group of subjects (2k+1, 2k+2 for 10/5)."""
    ordered = sorted(subjects)
    if folds < 2 or len(ordered) % folds:
        raise EdgememError(f"{len(ordered)} subjects cannot be split into {folds} equal folds")
    per = len(ordered) // folds
    out = []
    for k in range(folds):
        test = ordered[k * per : (k + 1) * per]
        out.append(([s for s in ordered if s not in test], test))
    return out


@dataclass(frozen=True)
class Normalizer:
    """Per-channel standardization; its statistics travel inside the checkpoint."""

    mean: np.ndarray  # [channels] float32
    std: np.ndarray  # [channels] float32

    @staticmethod
    def fit(x: np.ndarray) -> Normalizer:
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        std = flat.std(axis=0)
        return Normalizer(flat.mean(axis=0).astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    @property
    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std): what training needs to augment in sensor units (train.augment.physical)."""
        return self.mean, self.std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @staticmethod
    def from_dict(d: dict[str, list[float]]) -> Normalizer:
        return Normalizer(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))
