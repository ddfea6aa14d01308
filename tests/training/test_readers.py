"""Bring-your-own-data readers on files the tests write: npz, image folders, CIFAR-10 batches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import load_dataset
from training.errors import DataFormatError, DataNotFoundError
from training.readers import fixed_test_carve
from training.trainer import TrainConfig, prepare_data, train

pytestmark = pytest.mark.usefixtures("one_thread")
RNG = np.random.default_rng(0)


def images(n: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


# --- npz ---------------------------------------------------------------------------------------


def test_npz_without_a_test_part_gets_a_fixed_20_percent_carve(tmp_path: Path) -> None:
    x, y = images(50, 6, 6), np.arange(50) % 5
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(list("abcde")))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    train_idx, test_idx = fixed_test_carve(50)
    assert ds.input_shape == (1, 6, 6) and ds.classes == list("abcde")
    assert len(ds.test_y) == 10 and len(ds.train_y) == 40
    np.testing.assert_array_equal(ds.test_x[:, 0], x[test_idx])
    np.testing.assert_array_equal(ds.train_y, y[train_idx])


def test_npz_with_its_own_test_part_and_nchw_images(tmp_path: Path) -> None:
    x, x_test = images(30, 3, 5, 5), images(7, 3, 5, 5)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3, x_test=x_test, y_test=np.arange(7) % 3)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.input_shape == (3, 5, 5) and ds.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.test_x, x_test)
    assert len(ds.train_y) == 30


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 5, 5), np.float32), "y": np.zeros(4, int)}, "uint8.*astype"),
        (
            {"x": np.zeros((4, 5), np.uint8), "y": np.zeros(4, int)},
            r"\(N, H, W\) or \(N, C, H, W\)",
        ),
        ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.zeros(3, int)}, r"shape \(4,\)"),
        (
            {
                "x": np.zeros((4, 5, 5), np.uint8),
                "y": np.array([0, 1, 2, 3]),
                "classes": np.array(["a", "b"]),
            },
            r"\[0, 2\)",
        ),
        ({"x": np.zeros((4, 5, 5), np.uint8)}, "needs arrays x and y"),
        (
            {
                "x": np.zeros((4, 5, 5), np.uint8),
                "y": np.zeros(4, int),
                "x_test": np.zeros((2, 5, 5), np.uint8),
            },
            "x_test with y_test",
        ),
    ],
)
def test_npz_errors_name_the_file_and_the_fix(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFormatError, match=f"bad.npz.*{message}"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_holding_pickled_objects_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, int))
    with pytest.raises(DataFormatError, match="obj.npz.*without pickles"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


def test_missing_npz_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="nothere.npz not found"):
        load_dataset(f"npz:{tmp_path / 'nothere.npz'}")


def test_a_run_on_npz_data_calibrates_from_the_same_path(tmp_path: Path) -> None:
    x, y = images(120, 8, 8), np.arange(120) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = TrainConfig(data=f"npz:{tmp_path / 'd.npz'}", epochs=1, batch_size=32)
    train(config, tmp_path / "run", progress=False)
    assert prepare_data(config).validation[0].shape == (
        10,
        1,
        8,
        8,
    )  # 10% of the 96 left for training


# --- image folders -----------------------------------------------------------------------------


def write_folder(root: Path, modes: dict[str, str], size: tuple[int, int] = (6, 4), n: int = 5) -> None:
    for cls, mode in modes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
            pixels = RNG.integers(0, 256, size=(size[1], size[0], *channels), dtype=np.uint8)
            suffix = ".jpg" if i == 0 and mode == "RGB" else ".png"
            Image.fromarray(pixels, mode=mode).save(root / cls / f"{i}{suffix}")
    (root / next(iter(modes)) / "notes.txt").write_text("not an image")


def test_folder_of_grayscale_pngs_gives_one_channel_classes_in_name_order(tmp_path: Path) -> None:
    write_folder(tmp_path, {"cat": "L", "ant": "L", "bee": "L"})
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["ant", "bee", "cat"] and ds.input_shape == (1, 4, 6)
    assert len(ds.train_y) + len(ds.test_y) == 15 and len(ds.test_y) == 3
    first = np.asarray(Image.open(tmp_path / "ant" / "0.png"))
    everything = np.concatenate([ds.train_x, ds.test_x])
    assert any(np.array_equal(img[0], first) for img in everything)


def test_any_colour_image_makes_the_set_rgb(tmp_path: Path) -> None:
    write_folder(tmp_path, {"a": "L", "b": "RGB", "c": "RGBA"})
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.input_shape == (3, 4, 6)
    gray = np.asarray(Image.open(tmp_path / "a" / "1.png"))
    everything = np.concatenate([ds.train_x, ds.test_x])
    assert any(all(np.array_equal(img[c], gray) for c in range(3)) for img in everything)


def test_folder_with_train_and_test_parts_keeps_them(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", {"x": "L", "y": "L"}, n=4)
    write_folder(tmp_path / "test", {"y": "L"}, n=2)
    ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds.train_y) == 8 and ds.test_y.tolist() == [1, 1]


def test_folder_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    write_folder(tmp_path / "sizes", {"a": "L"})
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "sizes" / "a" / "odd.png")
    with pytest.raises(DataFormatError, match="odd.png.*resize"):
        load_dataset(f"folder:{tmp_path / 'sizes'}")
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="x.png.*re-save or remove"):
        load_dataset(f"folder:{tmp_path / 'broken'}")
    (tmp_path / "deep" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "deep" / "a" / "w.png")
    with pytest.raises(DataFormatError, match="w.png.*8-bit"):
        load_dataset(f"folder:{tmp_path / 'deep'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="empty/a: no .png"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataNotFoundError, match="nowhere not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


# --- CIFAR-10 python batches -------------------------------------------------------------------


def write_cifar(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """Tiny files in the cifar-10-batches-py layout (dicts with bytes keys, pickle protocol 2)."""
    root.mkdir()
    written = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = RNG.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=per_batch).tolist()
        record = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        (root / name).write_bytes(pickle.dumps(record, protocol=2))
        written[name] = data
    meta = {
        b"label_names": [
            n.encode()
            for n in [
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ]
        ],
        b"num_cases_per_batch": per_batch,
        b"num_vis": 3072,
    }
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def test_cifar10_reader_on_tiny_batch_files(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert ds.input_shape == (3, 32, 32) and ds.classes[0] == "airplane" and len(ds.classes) == 10
    assert len(ds.train_y) == 20 and len(ds.test_y) == 4
    row = written["data_batch_1"][0]
    np.testing.assert_array_equal(ds.train_x[0, 0], row[:1024].reshape(32, 32))  # red plane
    np.testing.assert_array_equal(ds.train_x[0, 2], row[2048:].reshape(32, 32))  # blue plane


class Exploit:
    """A pickle that would run a command when loaded."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_cifar10_reader_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DataFormatError, match="test_batch.*refusing to load (posix|os).system"):
        load_dataset(f"cifar10:{tmp_path / 'c'}")


def test_cifar10_missing_file_lists_what_is_needed(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3 not found.*cifar-10-batches-py"):
        load_dataset(f"cifar10:{tmp_path / 'c'}")
