import math

import numpy as np
import pytest
import torch

from pathlib import Path

from mto_core import token_trace
from mto_core.analysis.measures import (embed_2d, fisher_ratio, layer_measures, mask_layer_inputs,
                                        mask_token_similarity, masked_error_over, plane_auc, query_attention,
                                        recalibration_views, separability_auc, silhouette, singularity_score)
from mto_core.eval.efficiency import curve, efficiency, epochs_to_target, rauc
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model

from .conftest import small_config

ROOT = Path(__file__).resolve().parent.parent


def test_singularity_score_by_hand():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]])
    mask = torch.tensor([[False, True, False, True]])  # masked: tokens 1 and 3
    # token 1 (0,1): best visible cosine is with (1,1): 1/sqrt2; token 3 (1,-1): with (1,0): 1/sqrt2
    assert singularity_score(hidden, mask) == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-5)


def test_separability_auc_sees_an_obvious_signal():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(20, 17, generator=g) < 0.5
    mask[:, 0] = False
    hidden = torch.randn(20, 17, 8, generator=g)
    assert 0.3 < separability_auc(hidden, mask) < 0.7
    hidden[..., 0] += 5 * mask.float()
    assert separability_auc(hidden, mask) > 0.95


@pytest.mark.parametrize("name", ["simmim-mto", "mae"])
def test_layer_measures_cover_every_layer(name):
    torch.manual_seed(0)
    config = small_config(name)
    model = build_model(config.model, config.mto).eval()
    rows = layer_measures(model, torch.rand(8, 1, 28, 28), make_mask(8, 7, 0.6, 0), 0.6)
    assert [r.layer for r in rows] == [0, 1, 2]
    assert rows[0].attn_visible_to_masked is None
    for r in rows[1:]:
        assert 0 <= r.entropy_masked <= 1 and 0 <= r.entropy_visible <= 1
        assert r.heterogeneity == pytest.approx(1 - r.attn_visible_to_masked / 0.6)
    if name == "simmim-mto":  # hard recalibration: visible queries put no mass on masked keys
        assert all(r.attn_visible_to_masked == 0 and r.heterogeneity == 1 for r in rows[1:])
    assert rows[0].separability_auc > 0.95  # layer 0: mask tokens are one vector, trivially separable
    quick = layer_measures(model, torch.rand(8, 1, 28, 28), make_mask(8, 7, 0.6, 0), 0.6, full_auc=False)
    assert all(r.separability_auc is None and 0 <= r.separability_plane_auc <= 1 for r in quick)


def test_mask_token_similarity():
    torch.manual_seed(0)
    config = small_config("simmim")
    model = build_model(config.model, config.mto)
    sim = mask_token_similarity(model, torch.rand(2, 1, 28, 28))
    assert sim["cosine"].shape == (98,) and np.all(np.abs(sim["cosine"]) <= 1 + 1e-6)
    with torch.no_grad():
        model.encoder.mask_token.copy_(model.encoder.patch_embed(model.normalize(torch.rand(1, 1, 28, 28)))[0, :1])
    assert mask_token_similarity(model, torch.rand(2, 1, 28, 28))["cosine"].max() > 0.5


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_embed_2d(method):
    x = np.random.default_rng(0).normal(size=(60, 8))
    x[:30, 0] += 10
    xy = embed_2d(x, method)
    assert xy.shape == (60, 2)
    assert np.linalg.norm(xy[:30].mean(0) - xy[30:].mean(0)) > np.linalg.norm(xy[:30].std(0))
    with pytest.raises(ValueError, match="unknown embedding"):
        embed_2d(x, "tsne")


def test_silhouette_equals_sklearns_cosine_silhouette():
    from sklearn.metrics import silhouette_score

    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 20, 8, generator=gen)
    mask = torch.rand(3, 20, generator=gen) < 0.6
    mask[:, 0] = False
    hidden[mask] += 0.7
    hidden[1, 4] = 0  # a zero vector
    x = hidden[:, 1:].reshape(-1, 8).double().numpy()
    y = mask[:, 1:].reshape(-1).numpy()
    assert silhouette(hidden, mask) == pytest.approx(silhouette_score(x, y, metric="cosine"), abs=1e-12)
    lone = torch.zeros(2, 5, dtype=torch.bool)
    lone[0, 2] = True  # a group of one member scores 0 in both
    x, y = hidden[:2, 1:5].reshape(-1, 8).double().numpy(), lone[:, 1:].reshape(-1).numpy()
    assert silhouette(hidden[:2, :5], lone) == pytest.approx(silhouette_score(x, y, metric="cosine"), abs=1e-12)


def test_umap_keeps_cosine_neighbours_and_is_repeatable():
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32))
    x = np.concatenate([c + 0.3 * rng.normal(size=(80, 32)) for c in centres])
    xy = embed_2d(x, "umap")
    assert trustworthiness(x, xy, n_neighbors=10, metric="cosine") > 0.9
    np.testing.assert_array_equal(xy, embed_2d(x, "umap"))


def test_rauc_and_epochs_to_target():
    base = (np.array([1.0, 2, 3, 4]), np.array([0.5, 0.6, 0.7, 0.8]))
    fast = (np.array([1.0, 2, 3, 4]), np.array([0.6, 0.8, 0.85, 0.9]))
    assert rauc(base, base) == 1
    assert rauc(fast, base) == pytest.approx(((0.6 + 0.8) / 2 + (0.8 + 0.85) / 2 + (0.85 + 0.9) / 2)
                                             / ((0.5 + 0.6) / 2 + (0.6 + 0.7) / 2 + (0.7 + 0.8) / 2))
    assert epochs_to_target(fast, 0.8) == 2 and epochs_to_target(base, 0.95) is None
    result = efficiency(fast, base)
    assert result["epochs_to_target"] == 2 and result["efficiency"] == 0.5
    peaked = (np.array([1.0, 2, 3, 4]), np.array([0.5, 0.75, 0.7, 0.6]))  # peaks, then drifts down
    own = efficiency(peaked, peaked)
    assert own["epochs_to_target"] == 2 and own["epochs_to_best"] == 2 and own["best_target"] == 0.75
    assert efficiency(base, peaked)["epochs_to_target"] == 2 and efficiency(base, peaked)["epochs_to_best"] == 4
    rows = [{"kind": "epoch", "epoch": 2, "knn_val": 0.6}, {"kind": "train", "epoch": 1.5},
            {"kind": "epoch", "epoch": 1, "knn_val": 0.5}]
    assert curve(rows)[0].tolist() == [1, 2] and curve(rows)[1].tolist() == [0.5, 0.6]


def _two_groups(shift: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(16, 50, generator=g) < 0.6
    mask[:, 0] = False
    hidden = torch.randn(16, 50, 16, generator=g) + 3
    hidden[..., 0] += shift * mask.float()
    return hidden, mask


def test_separability_measures_that_do_not_saturate():
    """The full-space AUC is 1.0 for a small and for a large gap; silhouette, Fisher ratio and the
    2-D AUC keep telling them apart (the Tokens page's defect: 1.0 at every layer)."""
    small, mask = _two_groups(5.0)
    large, _ = _two_groups(15.0)
    none, _ = _two_groups(0.0)
    assert separability_auc(small, mask) > 0.99 and separability_auc(large, mask) > 0.99
    assert silhouette(large, mask) > silhouette(small, mask) > silhouette(none, mask)
    assert fisher_ratio(large, mask) > 2 * fisher_ratio(small, mask) > 2 * fisher_ratio(none, mask)
    assert 0.35 < plane_auc(none, mask) < 0.65 and plane_auc(large, mask) > 0.95


def test_the_shipped_mto_checkpoint_separates_more_than_its_baseline():
    """What the PCA plots show: MTO pulls masked and visible tokens apart, SimMIM barely."""
    from mto_core import load_checkpoint, load_fashion_mnist

    images = load_fashion_mnist("test").images[100:116]
    mask = make_mask(16, 7, 0.6, 1)
    base, mto = (layer_measures(load_checkpoint(ROOT / "checkpoints" / n), images, mask, 0.6)
                 for n in ("simmim", "simmim-mto"))
    for layer in (2, 3, 4):
        assert mto[layer].silhouette > base[layer].silhouette + 0.1
        assert mto[layer].fisher_ratio > 3 * base[layer].fisher_ratio
    assert len({round(r.silhouette, 3) for r in base}) == len(base)  # varies with depth


def test_query_attention_and_recalibration_views():
    torch.manual_seed(0)
    config = small_config("simmim-mto")
    model = build_model(config.model, config.mto).eval()
    image, mask = torch.rand(1, 1, 28, 28), make_mask(1, 7, 0.6, 0)
    trace = token_trace(model, image, mask)
    row = query_attention(trace, 3, 1)
    assert row.shape == (7, 7) and row.sum() <= 1 + 1e-5
    assert np.allclose(row, np.mean([query_attention(trace, 3, 1, h) for h in range(2)], axis=0), atol=1e-6)
    views = recalibration_views(model, image, mask, layer=1)
    token_mask = views["token_mask"]
    assert views["with"].shape == (50, 50) and token_mask.sum() == mask.sum()
    block = np.ix_(~token_mask, token_mask)  # visible queries x masked keys
    assert np.abs(views["with"][block]).max() == 0 and views["without"][block].sum() > 0.1
    assert np.allclose(views["with"].sum(-1), 1, atol=1e-5)
    assert model.mto_config.hard_recalibration  # the model itself is left as it was


def test_masked_error_over_a_batch():
    from mto_core import load_checkpoint, load_fashion_mnist

    ckpt = load_checkpoint(ROOT / "checkpoints" / "simmim")
    images = load_fashion_mnist("test").images[:32]
    stats = masked_error_over(ckpt, images, 0.6, 0)
    assert stats["n"] == 32 and stats["std"] > 0 and stats["sem"] == pytest.approx(stats["std"] / 32 ** 0.5)
    assert masked_error_over(ckpt, images, 0.9, 0)["mean"] > stats["mean"]


@pytest.mark.parametrize("name", ["simmim", "mae-mto"])
def test_mask_layer_inputs_repeat_one_vector_at_masked_positions(name):
    torch.manual_seed(0)
    config = small_config(name)
    model = build_model(config.model, config.mto).eval()
    mask = make_mask(2, 7, 0.6, 0)
    tokens = mask_layer_inputs(model, torch.rand(2, 1, 28, 28), mask)
    assert tokens.shape == (2, 49, 32)
    masked, visible = tokens[mask], tokens[~mask]
    assert torch.equal(masked, masked[:1].expand_as(masked))
    assert not torch.allclose(visible, visible[:1].expand_as(visible))
