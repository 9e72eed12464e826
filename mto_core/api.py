"""The public Python API used by the app, the analysis and users' notebooks.

Images are float (B, C, H, W) in [0, 1] (or uint8), masks (B, N) bool with True = masked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data.images import prepare_images
from .models.checkpoint import Checkpoint
from .models.objective import MIMModel
from .models.vit import StackPath, TokenOrder, VisibleFirst, patchify
from .mto.plugin import mto_losses
from .mto.records import TokenTrace


@dataclass
class Reconstruction:
    """images, masked (masked patches greyed) and reconstruction: (B, C, H, W) in [0, 1];
    reconstruction keeps the visible pixels and fills masked patches with the prediction;
    prediction is the raw model output everywhere; patch_error (B, N) mean squared pixel error
    of the prediction per patch; masked_error (B,) its mean over masked patches."""

    images: torch.Tensor
    mask: torch.Tensor
    masked: torch.Tensor
    prediction: torch.Tensor
    reconstruction: torch.Tensor
    patch_error: torch.Tensor
    masked_error: torch.Tensor


def _model(model: MIMModel | Checkpoint) -> MIMModel:
    return model.model if isinstance(model, Checkpoint) else model


def _inputs(model: MIMModel, images: torch.Tensor, mask: torch.Tensor,
            some_hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images converted for the model, the mask checked against them; ``some_hidden``: every
    image must hide at least one patch and show at least one (the losses average over both)."""
    cfg = model.config
    device = next(model.parameters()).device
    if images.is_floating_point() and images.numel():
        low, high = float(images.min()), float(images.max())
        if not -1e-3 <= low <= high <= 1 + 1e-3:
            raise ValueError(f"float images must hold pixels in 0..1, got {low:g}..{high:g}; divide by 255, "
                             "or pass uint8 images (0..255)")
    images = prepare_images(images, cfg.img_size, cfg.in_chans).to(device)
    if mask.ndim == 1:
        mask = mask.unsqueeze(0).expand(images.shape[0], -1)
    if mask.shape != (images.shape[0], cfg.num_patches):
        raise ValueError(f"mask must be (B, {cfg.num_patches}) for {images.shape[0]} images, got "
                         f"{tuple(mask.shape)}")
    mask = mask.to(device=device, dtype=torch.bool)
    hidden = mask.sum(1)
    if some_hidden and not bool(((hidden > 0) & (hidden < cfg.num_patches)).all()):
        raise ValueError("every image's mask must hide at least one patch and show at least one; got "
                         f"{int(hidden.min())} to {int(hidden.max())} of {cfg.num_patches} hidden")
    return images, mask


def _path(mask: torch.Tensor, maps: bool) -> StackPath:
    """Visible-first (MTO's rows through fused kernels) where no attention map is asked for and
    every sample hides as many patches; token order otherwise."""
    counts = mask.sum(1)
    if not maps and bool((counts == counts[0]).all()):
        return VisibleFirst(int(counts[0]))
    return TokenOrder()


def patch_mask_to_pixels(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, N) patch mask -> (B, 1, H, W) pixel mask."""
    b, n = mask.shape
    g = int(round(n**0.5))
    pix = mask.view(b, 1, g, 1, g, 1).expand(-1, -1, -1, patch_size, -1, patch_size)
    return pix.reshape(b, 1, g * patch_size, g * patch_size)


def require_pixels(model: MIMModel | Checkpoint) -> None:
    """ValueError, in one line, if the model predicts no pixels (ConMIM predicts features)."""
    _model(model).check_pixels()


@torch.no_grad()
def reconstruct(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor) -> Reconstruction:
    """Reconstruct the masked patches of ``images`` (any size or channels, converted); ValueError
    for a model that predicts features (ConMIM) instead of pixels."""
    model = _model(model)
    require_pixels(model)
    images, mask = _inputs(model, images, mask, some_hidden=True)
    out = model(images, mask, path=_path(mask, maps=False))
    prediction = model.to_pixels(out.pred.float(), images)
    pix = patch_mask_to_pixels(mask, model.config.patch_size)
    recon = torch.where(pix, prediction, images)
    masked = torch.where(pix, torch.full_like(images, 0.5), images)
    err = (patchify(prediction, model.config.patch_size) - patchify(images, model.config.patch_size))
    patch_error = err.pow(2).mean(-1)
    masked_error = (patch_error * mask).sum(1) / mask.sum(1).clamp_min(1)
    return Reconstruction(images, mask, masked, prediction, recon, patch_error, masked_error)


@torch.no_grad()
def feature_match_ranks(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How well each masked patch's predicted feature matches the teacher's, (B, N) float.

    For masked patch i: the rank (1 = best) of the teacher's feature at i among the teacher's
    features of all N patches of the same image, ordered by cosine similarity to the prediction
    at i; NaN at visible patches. ConMIM: the head's prediction against the teacher (the InfoNCE's
    own comparison); BootMAE: the feature decoder's prediction against the teacher's features,
    both layer-normed as in its feature loss. Rank 1 everywhere means every masked patch's
    prediction is closer to its own target than to any other patch's. ValueError for methods
    with no feature prediction (SimMIM, MAE).
    """
    similarity, mask = _feature_similarity(model, images, mask)
    own = similarity.diagonal(dim1=1, dim2=2).unsqueeze(-1)
    ranks = 1.0 + (similarity > own).sum(-1).float()
    return torch.where(mask, ranks, torch.full_like(ranks, float("nan")))


def _feature_similarity(model: MIMModel | Checkpoint, images: torch.Tensor,
                        mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N query, N candidate) cosines of each patch's predicted feature to the teacher's feature
    of every patch of its image, and the mask as the model takes it; ValueError for a model with no
    feature prediction."""
    model = _model(model)
    if not hasattr(model, "feature_pair"):
        raise ValueError(f"{model.config.method} predicts pixels only, with no teacher features to match; "
                         "feature matches are for conmim and bootmae checkpoints")
    images, mask = _inputs(model, images, mask, some_hidden=True)
    pred, target = model.feature_pair(images, mask)
    pred, target = F.normalize(pred.float(), dim=-1), F.normalize(target.float(), dim=-1)
    return pred @ target.transpose(1, 2), mask


@dataclass
class FeatureMatch:
    """cosine (B, N): for each masked patch, the cosine similarity of its predicted feature to the
    teacher's feature of the same patch (1 = identical; NaN at visible patches); chance (B,): the
    mean cosine of the masked patches' predictions to the teacher's features of the image's other
    patches, the level a prediction that knew nothing about its own patch would reach."""

    cosine: torch.Tensor
    chance: torch.Tensor


@torch.no_grad()
def feature_match(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor) -> FeatureMatch:
    """How close each masked patch's predicted feature comes to the teacher's feature of that patch
    (ConMIM, BootMAE; in the space their losses compare, as :func:`feature_match_ranks`). Unlike the
    rank, which a trained ConMIM saturates at 1, the cosine keeps varying from patch to patch."""
    similarity, mask = _feature_similarity(model, images, mask)
    own = similarity.diagonal(dim1=1, dim2=2)
    n = similarity.shape[-1]
    others = (similarity.sum(-1) - own) / (n - 1)  # (B, N): mean cosine to the other patches' targets
    chance = (others * mask).sum(1) / mask.sum(1)
    return FeatureMatch(torch.where(mask, own, torch.full_like(own, float("nan"))).cpu(), chance.cpu())


@torch.no_grad()
def token_trace(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor,
                hidden_layers: Collection[int] | None = None,
                attention_layers: Collection[int] | None = None) -> TokenTrace:
    """Per-layer token features h^l (B, T, D) and attention maps A^l (B, H, T, T).

    The layers are those that see mask tokens: SimMIM's and ConMIM's encoder, MAE's decoder,
    BootMAE's pixel decoder. Layer 0 is the
    input with position; by default every layer is returned (and always those the model's own MTO
    losses need). Token 0 is [CLS]; token 1 + i is
    patch i; ``trace.token_mask`` (B, T) marks the mask tokens.
    """
    model = _model(model)
    images, mask = _inputs(model, images, mask)
    layers = model.config.mask_layers
    hidden = range(layers + 1) if hidden_layers is None else hidden_layers
    attention = range(1, layers + 1) if attention_layers is None else attention_layers
    return model(images, mask, path=_path(mask, maps=bool(attention)), probs_layers=attention,
                 hidden_layers=hidden).trace


def compute_mto_losses(model: MIMModel | Checkpoint, images: torch.Tensor,
                       mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_MIM and the MTO terms (L_rec, L_sing, L_ent) of a batch, whether or not the model's
    config weights them in (the MTO config's tau and K are used). BootMAE: the terms of its pixel
    decoder, the stack its trace shows (training averages them with its feature decoder's)."""
    model = _model(model)
    images, mask = _inputs(model, images, mask, some_hidden=True)
    k = model.plan.depth
    with torch.no_grad():
        out = model(images, mask, probs_layers=range(1, k + 1), hidden_layers=range(k + 1))
    on = type(model.mto_config)(**{**vars(model.mto_config), "recalibration_weight": 1.0,
                                   "singularity_weight": 1.0, "entropy_weight": 1.0})
    return {"mim": out.mim_loss, **mto_losses(out.trace, on, k)}


@torch.no_grad()
def features(model: MIMModel | Checkpoint, images: torch.Tensor) -> torch.Tensor:
    """Average-pooled encoder features of whole images, (B, D)."""
    model = _model(model)
    cfg = model.config
    device = next(model.parameters()).device
    return model.features(prepare_images(images, cfg.img_size, cfg.in_chans).to(device))
