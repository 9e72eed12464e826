import pytest
import torch

from mto_core.config import ConfigError, MaskConfig
from mto_core.data.masking import block_mask, hidden_count, make_mask, random_mask


@pytest.mark.parametrize("kind", ["random", "block"])
@pytest.mark.parametrize("ratio", [0.1, 0.6, 0.75, 0.9])
def test_exact_count_and_dtype(kind, ratio):
    mask = make_mask(16, 7, ratio, 3, kind=kind)
    assert mask.dtype == torch.bool and mask.shape == (16, 49)
    assert (mask.sum(1) == round(ratio * 49)).all()


def test_seeded_and_varied():
    a = random_mask(8, 7, 0.6, torch.Generator().manual_seed(1))
    b = random_mask(8, 7, 0.6, torch.Generator().manual_seed(1))
    c = random_mask(8, 7, 0.6, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(row.tolist()) for row in a}) == 8


def test_mask_patch_size_masks_whole_units():
    mask = random_mask(4, 8, 0.5, torch.Generator().manual_seed(0), mask_patch_size=2).view(4, 4, 2, 4, 2)
    assert (mask == mask[:, :, :1, :, :1]).all()
    with pytest.raises(ConfigError, match="must divide"):
        random_mask(1, 7, 0.5, torch.Generator(), mask_patch_size=2)


def test_block_mask_is_more_clustered_than_random():
    def neighbours(mask):
        grid = mask.view(-1, 14, 14).float()
        return (grid[:, 1:] * grid[:, :-1]).sum() + (grid[:, :, 1:] * grid[:, :, :-1]).sum()

    g = torch.Generator().manual_seed(0)
    assert neighbours(block_mask(32, 14, 0.4, g)) > 1.3 * neighbours(random_mask(32, 14, 0.4, g))


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, float("nan"), 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        make_mask(2, 7, ratio, 0)


def test_unknown_kind():
    with pytest.raises(ConfigError, match="unknown mask kind"):
        make_mask(2, 7, 0.5, 0, kind="stripes")


@pytest.mark.parametrize("kind, unit", [("random", 1), ("random", 7), ("block", 1)])
def test_hidden_count_is_what_every_drawn_mask_hides(kind, unit):
    config = MaskConfig(kind=kind, ratio=0.6, mask_patch_size=unit)
    mask = make_mask(16, 14, config.ratio, 0, kind, unit, config.min_block)
    assert set(mask.sum(1).tolist()) == {hidden_count(14, config)}
