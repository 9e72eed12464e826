"""The photo-crop set: the same seed draws the same crops (another seed others), the held-out photos
never reach a training crop, the splits have the shapes a model of the tiny-rgb size takes, and the
config selects it (data.dataset=photo-crops, data.held_out)."""

import pytest
import torch

from mto_core.config import ConfigError, DataConfig, preset, set_value, validate
from mto_core.data import photo_crops as pc
from mto_core.data.images import DataError, load_dataset
from mto_core.eval.schedule import probe_sets


def test_the_tiny_rgb_size_is_32_px_colour_of_the_tiny_width_and_depth():
    config = preset("mae", "tiny-rgb")
    tiny = preset("mae", "tiny").model
    m = config.model
    assert (m.img_size, m.patch_size, m.in_chans, m.grid) == (32, 4, 3, 8)
    assert (m.embed_dim, m.depth, m.decoder_dim, m.decoder_depth) == (tiny.embed_dim, tiny.depth, tiny.decoder_dim,
                                                                      tiny.decoder_depth)
    assert m.pixel_mean == [0.485, 0.456, 0.406] and m.pixel_std == [0.229, 0.224, 0.225]


def test_the_same_seed_draws_the_same_crops_and_another_seed_others():
    names = ("china", "flower")
    a = pc.make_crops(names, 12, 16, 0, "photo-crops")
    b = pc.make_crops(names, 12, 16, 0, "photo-crops")
    c = pc.make_crops(names, 12, 16, 1, "photo-crops")
    assert a.images.shape == (12, 3, 16, 16) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.classes == names and set(a.labels.tolist()) <= {0, 1}


def test_crop_boxes_lie_inside_the_photo_and_span_a_range_of_scales():
    draws = torch.rand(2000, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    boxes = pc.crop_boxes(draws, [(600, 400), (300, 300)], 32)
    sides = []
    for p, (left, top, right, bottom), _ in boxes:
        width, height = [(600, 400), (300, 300)][p]
        assert 0 <= left < right <= width + 1e-9 and 0 <= top < bottom <= height + 1e-9
        sides.append(max(right - left, bottom - top))
    assert min(sides) < 32 and max(sides) > 250  # from a few pixels' worth to nearly the whole photo
    assert 0.3 < sum(mirror for *_, mirror in boxes) / len(boxes) < 0.7


def test_held_out_photos_are_never_in_a_training_crop():
    config = preset("mae", "tiny-rgb")
    set_value(config, "data.dataset", "photo-crops")
    # the photos each crop came from: the training split's classes exclude the held-out ones
    train_names = tuple(n for n in pc.PHOTOS if n not in pc.HELD_OUT)
    assert set(train_names).isdisjoint(pc.HELD_OUT) and set(pc.HELD_OUT) <= set(pc.PHOTOS)
    val = load_dataset(config.data, config.model, "val")
    test = load_dataset(config.data, config.model, "test")
    assert val.classes == test.classes == pc.HELD_OUT
    assert val.images.shape == (pc.VAL_CROPS, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    # the training split, made small: its crops come only from photos not held out
    original = pc.TRAIN_CROPS
    try:
        pc.TRAIN_CROPS = 64
        pc._photo_crops.cache_clear()
        train = pc.photo_crops("train", 32, 0)
        again = pc.photo_crops("train", 32, 0)
    finally:
        pc.TRAIN_CROPS = original
        pc._photo_crops.cache_clear()
    assert train.classes == train_names and not set(train.classes) & set(pc.HELD_OUT)
    assert train.images.shape == (64, 3, 32, 32) and torch.equal(train.images, again.images)
    # no training crop equals the held-out photos as a model sees them
    assert not any(torch.equal(t, h) for t in train.images for h in test.images)


def test_data_held_out_names_other_photos_and_refuses_unknown_ones():
    assert pc.held_out_names("") == pc.HELD_OUT
    assert pc.held_out_names("china, flower") == ("china", "flower")
    held = pc.photo_crops("test", 16, 0, "china")
    assert held.classes == ("china",) and held.images.shape == (1, 3, 16, 16)
    with pytest.raises(DataError, match="'lena', which is not one of the photos") as error:
        pc.held_out_names("astronaut,lena")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="leaves none to train on"):
        pc.held_out_names(",".join(pc.PHOTOS))


def test_the_dataset_is_a_config_value():
    config = preset("simmim", "tiny-rgb")
    set_value(config, "data.dataset", "photo-crops")
    set_value(config, "data.held_out", "astronaut,chelsea,coffee,rocket")
    assert config.to_dict()["data"]["held_out"] == "astronaut,chelsea,coffee,rocket"
    with pytest.raises(ConfigError, match="photo-crops"):
        set_value(config, "data.dataset", "photos")


def test_photo_crops_refuse_class_probes_in_one_line():
    config = preset("mae", "tiny-rgb")
    set_value(config, "data.dataset", "photo-crops")
    set_value(config, "train.knn_every", 1)
    with pytest.raises(ConfigError, match="no classes to probe") as error:
        validate(config)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="measure its reconstructions instead"):
        probe_sets(config)


def test_trained_on_reads_the_held_out_photos_from_the_config():
    crops = DataConfig(dataset="photo-crops", held_out="astronaut,chelsea,coffee,rocket")
    assert [pc.trained_on(crops, n) for n in ("astronaut", "rocket", "motorcycle", "camera", "moon")] == [
        False, False, True, True, False]  # moon ships with scikit-image but is not among the training photos
    assert pc.trained_on(DataConfig(dataset="photo-crops", held_out="camera"), "astronaut") is True
    assert pc.trained_on(DataConfig(dataset="photo-crops", held_out="camera"), "camera") is False
    assert pc.trained_on(DataConfig(), "astronaut") is None  # Fashion-MNIST: nothing known of photos
