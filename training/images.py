"""Reading a folder of images, one sub-folder per class, into uint8 (N, C, H, W) arrays (Pillow).

Pillow is present wherever matplotlib is (a dependency of it). Colour handling is explicit: if every
image is 8-bit grayscale (Pillow modes 1, L, LA) the set has 1 channel; if any image is colour (RGB,
RGBA, P, CMYK, YCbCr) every image is converted to RGB, 3 channels (alpha dropped, gray repeated).
16-bit and float images are refused. All images must have the same height and width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from training.errors import DataFormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA")
COLOUR_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr")


def class_folders(root: Path) -> list[Path]:
    """Visible sub-directories of ``root``, sorted by name (the class order)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataFormatError(f"{root}: no class sub-folders; put each class's images in {root}/<class name>/")
    return folders


def image_files(folder: Path) -> list[Path]:
    """PNG / JPEG files of one class folder, sorted (other files are ignored)."""
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataFormatError(f"{folder}: no .png/.jpg/.jpeg images; every class folder needs some")
    return files


def open_image(path: Path) -> Image.Image:
    """A loaded Pillow image; unreadable files and unsupported modes name the file."""
    try:
        with Image.open(path) as image:
            image.load()
            loaded = image.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise DataFormatError(f"{path}: not a readable PNG/JPEG ({error}); re-save or remove it") from error
    if loaded.mode not in GRAY_MODES + COLOUR_MODES:
        raise DataFormatError(
            f"{path}: image mode {loaded.mode} (16-bit or float) is not supported; save it as 8-bit grayscale or RGB"
        )
    return loaded


def to_array(image: Image.Image, path: Path, channels: int, size: tuple[int, int]) -> NDArray[np.uint8]:
    """(C, H, W) uint8 in the set's colour mode; a size mismatch names the file."""
    if image.size != size:
        raise DataFormatError(
            f"{path}: size {image.size} differs from the first image's {size}; resize all images to one size first"
        )
    converted = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(converted, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_image_folder(
    root: Path, classes: list[str] | None = None
) -> tuple[list[str], NDArray[np.uint8], NDArray[np.int64]]:
    """(class names, images (N, C, H, W), labels) of ``root/<class>/<image>``.

    With ``classes`` (a test part), every folder must name one of them; labels follow that order.
    """
    folders = class_folders(root)
    names = classes if classes is not None else [f.name for f in folders]
    unknown = [f.name for f in folders if f.name not in names]
    if unknown:
        raise DataFormatError(
            f"{root}: class folders {unknown} are not among the training classes "
            f"{names}; use the same folder names in train/ and test/"
        )
    entries = [(path, names.index(folder.name), open_image(path)) for folder in folders for path in image_files(folder)]
    channels = 1 if all(img.mode in GRAY_MODES for _, _, img in entries) else 3
    size = entries[0][2].size
    x = np.stack([to_array(img, path, channels, size) for path, _, img in entries])
    y = np.array([label for _, label, _ in entries], dtype=np.int64)
    return list(names), x, y
