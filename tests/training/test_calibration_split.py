"""The calibration split (issue 17 point 1) and class-flip label noise (point 4): seeded, disjoint
from train / validation / test, carved from the rows a subset run does not train on; noise on
training labels only, never by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.calibrate_run import CALIBRATION_FILE, calibrate_run
from training.config import TrainConfig
from training.data import carve_calibration, load_digits, split_train_validation
from training.errors import TrainingError
from training.label_noise import flip_labels, flip_map
from training.trainer import prepare_data, train


@settings(max_examples=40, deadline=None)
@given(st.integers(50, 400), st.integers(0, 30), st.integers(1, 20), st.integers(0, 5))
def test_carve_is_disjoint_seeded_and_from_the_unused_pool(n: int, subset: int, size: int, seed: int) -> None:
    rows = np.sort(np.random.default_rng(seed).permutation(1000)[:n])
    train, calibration = carve_calibration(rows, subset, size, seed)
    assert len(calibration) == size and not set(train) & set(calibration)
    assert set(train) | set(calibration) <= set(rows)
    if subset:
        assert list(train) == list(rows[:subset])  # the training subset is untouched
    else:
        assert len(train) == n - size
    again = carve_calibration(rows, subset, size, seed)
    assert np.array_equal(again[1], calibration)


def test_carve_refuses_more_rows_than_the_pool() -> None:
    with pytest.raises(TrainingError, match="--calibration-size"):
        carve_calibration(np.arange(100), 90, 11, 0)


def test_prepared_splits_are_disjoint_and_noise_touches_training_labels_only() -> None:
    ds = load_digits()
    config = TrainConfig(data="digits", train_subset=600, calibration_size=300, label_noise=0.2, seed=1)
    clean = prepare_data(TrainConfig(data="digits", train_subset=600, calibration_size=300, seed=1), ds)
    noisy = prepare_data(config, ds)
    assert noisy.calibration is not None and clean.calibration is not None
    split = split_train_validation(len(ds.train_y), 0.1, 1)
    assert len(noisy.calibration[1]) == 300 and len(noisy.train[1]) == 600
    for part in ("validation", "test", "calibration"):
        assert np.array_equal(getattr(noisy, part)[1].numpy(), getattr(clean, part)[1].numpy())
    flipped = (noisy.train[1] != clean.train[1]).float().mean().item()
    assert 0.12 < flipped < 0.28
    assert len(split.validation) == len(noisy.validation[1])


def test_no_calibration_split_and_no_noise_by_default() -> None:
    prepared = prepare_data(TrainConfig(data="digits"), load_digits())
    assert prepared.calibration is None and TrainConfig().label_noise == 0.0


def test_flip_map_never_maps_a_class_to_itself() -> None:
    for seed in range(20):
        mapping = flip_map(10, np.random.default_rng(seed))
        assert np.all(mapping != np.arange(10)) and mapping.min() >= 0 and mapping.max() < 10


@pytest.mark.parametrize("eta", [0.0, 0.2, 0.5])
def test_flip_rate_and_target_follow_the_map(eta: float) -> None:
    labels = np.random.default_rng(0).integers(0, 10, 20000)
    noisy = flip_labels(labels, 10, eta, seed=3)
    mapping = flip_map(10, np.random.default_rng([3, 3]))
    changed = noisy != labels
    assert abs(changed.mean() - eta) < 0.015
    assert np.array_equal(noisy[changed], mapping[labels[changed]])


def test_noise_rate_out_of_range_is_refused() -> None:
    with pytest.raises(TrainingError, match="--label-noise"):
        flip_labels(np.zeros(3, dtype=np.int64), 10, 1.0, 0)


@pytest.mark.usefixtures("one_thread")
def test_candor_calibrate_fits_on_the_calibration_split(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", width=4, epochs=1, train_subset=600, calibration_size=200)
    train(config, tmp_path / "run", dataset=load_digits(), progress=False)
    calibrate_run(tmp_path / "run", "best")
    assert json.loads((tmp_path / "run" / CALIBRATION_FILE).read_text())["n_validation"] == 200
