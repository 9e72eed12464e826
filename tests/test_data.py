import gzip
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from mto_core.config import preset
from mto_core.data.images import (DataError, augment, fashion_mnist_root, load_dataset, load_fashion_mnist,
                                  load_image_folder, prepare_images, read_idx, read_image, split_indices)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", array)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)


def test_truncated_idx_named(tmp_path):
    array = np.zeros((5, 4, 4), dtype=np.uint8)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 5, 4, 4)
    (tmp_path / "t.idx").write_bytes(header + array.tobytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t.idx")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")


def test_shipped_subset_is_balanced_and_labelled():
    train = load_fashion_mnist("train", "shipped")
    test = load_fashion_mnist("test", "shipped")
    assert train.images.shape == (6000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.equal(train.labels.bincount(), torch.full((10,), 600))
    assert len(test) == 1000 and len(train.classes) == 10


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", str(tmp_path))


def test_auto_root_prefers_system_copy(monkeypatch, tmp_path):
    import mto_core.data.images as data

    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST", tmp_path)
    assert fashion_mnist_root() == data.SHIPPED_FASHION_MNIST
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert fashion_mnist_root() == tmp_path


def test_split_is_deterministic_and_disjoint():
    train, val = split_indices(100, 0.2, seed=3)
    again, _ = split_indices(100, 0.2, seed=3)
    assert torch.equal(train, again) and len(val) == 20
    assert set(train.tolist()).isdisjoint(val.tolist()) and len(train) + len(val) == 100
    config = preset("simmim")
    config.data.root = "shipped"
    assert len(load_dataset(config.data, config.model, "val")) == 600


def _png(mode, size, color):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_folder_reads_any_mode_and_skips_other_files(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "cats" / "a.png").write_bytes(_png("RGB", (50, 30), (255, 0, 0)))
    Image.new("L", (10, 10), 200).save(tmp_path / "dogs" / "b.jpg")
    Image.new("RGBA", (64, 64), (0, 0, 255, 128)).save(tmp_path / "dogs" / "c.webp")
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, 28, 1)
    assert data.images.shape == (3, 1, 28, 28) and data.classes == ("cats", "dogs")
    assert data.labels.tolist() == [0, 1, 1]
    rgb = load_image_folder(tmp_path, 16, 3)
    assert rgb.images.shape == (3, 3, 16, 16) and rgb.images[0, 0].float().mean() > 250


def test_empty_folder_and_corrupt_image(tmp_path):
    with pytest.raises(DataError, match="holds no images"):
        load_image_folder(tmp_path, 28, 1)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="not a readable image"):
        load_image_folder(tmp_path, 28, 1)
    with pytest.raises(DataError, match="upload is not a readable image"):
        read_image(b"hello", 28, 1)


def test_prepare_images_converts_size_and_channels():
    x = torch.randint(0, 256, (2, 3, 56, 40), dtype=torch.uint8)
    out = prepare_images(x, 28, 1)
    assert out.shape == (2, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    assert prepare_images(torch.rand(2, 1, 28, 28), 28, 3).shape == (2, 3, 28, 28)
    with pytest.raises(DataError, match="4-channel"):
        prepare_images(torch.rand(1, 4, 28, 28), 28, 3)


def test_augment_is_driven_by_draws():
    x = torch.rand(4, 1, 28, 28)
    identity = torch.tensor([[1.0, 0.5, 0.5, 0.9]]).expand(4, 4)  # full-size crop, centred, no flip
    assert torch.allclose(augment(x, identity), x, atol=1e-5)
    flipped = torch.tensor([[1.0, 0.5, 0.5, 0.1]]).expand(4, 4)
    assert torch.allclose(augment(x, flipped), x.flip(-1), atol=1e-5)
    draws = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(augment(x, draws), augment(x, draws))
