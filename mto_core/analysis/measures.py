"""Masked vs visible tokens, layer by layer: the measures of docs/mto-spec.md ("Measures").

All measures use the layers that see mask tokens (SimMIM: encoder, MAE: decoder); layer 0 is
the input with position. r is the mask ratio (masked fraction of the patch tokens).

- a_VM^l = mean_{i in V} sum_{j in M} A^l_ij            visible-to-masked attention mass (~ r if uninformed)
- HI^l   = 1 - a_VM^l / r                                heterogeneity index
- H^l_M, H^l_V: mean row entropy of masked / visible queries, divided by log(keys)
- S^l    = 1 - mean_{i in M} max_{j in V} cos(h^l_i, h^l_j)   singularity score
- AUC^l  = ROC-AUC of a logistic-regression probe telling masked from visible patch tokens,
           fitted on the tokens of half the images, scored on the other half. In the full
           feature space it saturates (1.0 at every layer of every trained checkpoint), so three
           measures that do vary sit beside it:
- AUC2^l = the same probe in the 2-D PCA plane the Tokens page draws
- Sil^l  = silhouette of the masked / visible split (cosine distance), -1..1
- F^l    = Fisher ratio along the difference of the two groups' mean directions:
           (mean_M p - mean_V p)^2 / (var_M p + var_V p), p the unit features projected on it
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..api import token_trace
from ..config import RunConfig
from ..data.images import prepare_images
from ..data.masking import make_mask
from ..data.sources import open_dataset
from ..data.streaming import first_images
from ..models.checkpoint import Checkpoint
from ..models.objective import MIMModel
from ..mto.records import TokenTrace
from ..mto.terms import entropy_loss, recalibration_loss


@dataclass
class LayerMeasures:
    layer: int
    attn_visible_to_masked: float | None
    heterogeneity: float | None
    entropy_masked: float | None
    entropy_visible: float | None
    singularity: float
    separability_auc: float | None
    separability_plane_auc: float
    silhouette: float
    fisher_ratio: float

    def to_dict(self) -> dict:
        return asdict(self)


def singularity_score(hidden: torch.Tensor, token_mask: torch.Tensor) -> float:
    """S^l = 1 - mean over masked tokens of the max cosine to a visible token of the same image."""
    h = F.normalize(hidden.float(), dim=-1)
    cos = h @ h.transpose(1, 2)  # (B, T, T)
    cos = cos.masked_fill(token_mask[:, None, :], float("-inf"))  # keys: visible only
    nearest = cos.max(dim=-1).values  # (B, T)
    return float(1 - nearest[token_mask].mean())


def separability_auc(hidden: torch.Tensor, token_mask: torch.Tensor, seed: int = 0) -> float:
    """Held-out ROC-AUC of a linear probe telling masked (1) from visible (0) patch tokens."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x = hidden[:, 1:].float().cpu().numpy()  # patch tokens only
    y = token_mask[:, 1:].cpu().numpy()
    half = max(1, x.shape[0] // 2)
    if half >= x.shape[0]:
        raise ValueError("separability needs at least 2 images (fit on one half, score on the other)")
    fit_x, fit_y = x[:half].reshape(-1, x.shape[-1]), y[:half].reshape(-1)
    test_x, test_y = x[half:].reshape(-1, x.shape[-1]), y[half:].reshape(-1)
    if np.all(fit_x == fit_x[0]) or len(set(fit_y)) < 2 or len(set(test_y)) < 2:
        return 0.5
    scaler = StandardScaler().fit(fit_x)
    clf = LogisticRegression(max_iter=500, random_state=seed).fit(scaler.transform(fit_x), fit_y)
    return float(roc_auc_score(test_y, clf.decision_function(scaler.transform(test_x))))


def _patch_tokens(hidden: torch.Tensor, token_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Patch tokens (B * N, D) float64 and their masked flags (B * N,), [CLS] left out."""
    x = hidden[:, 1:].double().cpu().numpy()
    return x.reshape(-1, x.shape[-1]), token_mask[:, 1:].cpu().numpy().reshape(-1)


def plane_auc(hidden: torch.Tensor, token_mask: torch.Tensor) -> float:
    """Held-out ROC-AUC of masked vs visible in the 2-D PCA plane of the patch tokens: what a
    reader can see in the Tokens page's scatter plot. Fit on half the images, scored on the rest."""
    from sklearn.decomposition import PCA

    x, y = _patch_tokens(hidden, token_mask)
    if x.shape[0] < 3 or np.allclose(x, x[0]):
        return 0.5
    xy = PCA(n_components=2, random_state=0).fit_transform(x)
    b = hidden.shape[0]
    plane = torch.from_numpy(xy.reshape(b, -1, 2))
    return separability_auc(torch.cat([plane[:, :1], plane], dim=1), token_mask)


def silhouette(hidden: torch.Tensor, token_mask: torch.Tensor) -> float:
    """Silhouette of the masked / visible split of the patch tokens, cosine distance: 1 = two
    tight, far-apart groups, 0 = overlapping, < 0 = mixed.

    Exact, in O(n D) rather than O(n^2 D): with unit vectors u and cosine distance 1 - u.v, the
    mean distance from u_i to a group G is 1 - u_i . (sum of G) / |G| (its own group without
    itself). Equal to sklearn's silhouette_score(x, y, metric="cosine")."""
    x, y = _patch_tokens(hidden, token_mask)
    if y.all() or not y.any() or np.allclose(x, x[0]):
        return 0.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)  # a zero vector stays zero, as in sklearn
    self_sim = (unit * unit).sum(1)
    sums = {True: unit[y].sum(0), False: unit[~y].sum(0)}
    sizes = {True: int(y.sum()), False: int((~y).sum())}
    own_sum = np.where(y[:, None], sums[True], sums[False])
    other_sum = np.where(y[:, None], sums[False], sums[True])
    own_n = np.where(y, sizes[True], sizes[False])
    other_n = np.where(y, sizes[False], sizes[True])
    with np.errstate(invalid="ignore", divide="ignore"):
        a = 1 - ((unit * own_sum).sum(1) - self_sim) / (own_n - 1)
        b = 1 - (unit * other_sum).sum(1) / other_n
        s = np.where(own_n > 1, (b - a) / np.maximum(a, b), 0.0)  # a lone member scores 0, as in sklearn
    return float(np.nan_to_num(s).mean())


def fisher_ratio(hidden: torch.Tensor, token_mask: torch.Tensor) -> float:
    """Fisher ratio of masked vs visible along the difference of their mean unit features."""
    x, y = _patch_tokens(hidden, token_mask)
    if y.all() or not y.any():
        return 0.0
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    direction = x[y].mean(0) - x[~y].mean(0)
    norm = np.linalg.norm(direction)
    if norm < 1e-12:
        return 0.0
    p = x @ (direction / norm)
    return float((p[y].mean() - p[~y].mean()) ** 2 / max(p[y].var() + p[~y].var(), 1e-12))


def layer_measures(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor,
                   ratio: float | None = None, full_auc: bool = True) -> list[LayerMeasures]:
    """Every measure for every layer that sees mask tokens, on the given images and masks.

    ``full_auc=False`` leaves out the full-space probe AUC (None), the slowest measure and the
    one that saturates; the app does not draw it."""
    trace = token_trace(model, images, mask)
    token_mask = trace.token_mask
    assert token_mask is not None
    r = ratio if ratio is not None else float(token_mask[:, 1:].float().mean())
    rows = []
    for layer in sorted(trace.hidden):
        attn = trace.attn.get(layer)
        a_vm = float(recalibration_loss(attn, token_mask)) if attn is not None else None
        rows.append(LayerMeasures(
            layer=layer,
            attn_visible_to_masked=a_vm,
            heterogeneity=1 - a_vm / r if a_vm is not None else None,
            entropy_masked=float(entropy_loss(attn, token_mask)) if attn is not None else None,
            entropy_visible=float(entropy_loss(attn, ~token_mask)) if attn is not None else None,
            singularity=singularity_score(trace.hidden[layer], token_mask),
            separability_auc=separability_auc(trace.hidden[layer], token_mask) if full_auc else None,
            separability_plane_auc=plane_auc(trace.hidden[layer], token_mask),
            silhouette=silhouette(trace.hidden[layer], token_mask),
            fisher_ratio=fisher_ratio(trace.hidden[layer], token_mask),
        ))
    return rows


def analysis_images(config: RunConfig, images: str | None = None) -> tuple[torch.Tensor, str]:
    """What ``mto analyze`` measures on, and its description: ``images`` a number (held-out test
    images, default 256; for an RGB model, bundled photos, default all) or a folder of images.
    RGB models see photos prepared as ImageNet models expect (short side resized, centre crop)."""
    from ..data.photos import bundled_photos, photo_folder

    m = config.model
    count = None
    if images is not None and images.strip().isdigit():
        count = int(images)
        if count < 1:
            raise ValueError(f"--images must be at least 1, got {count}")
    elif images is not None:
        photos = photo_folder(images, m.img_size)
        return photos.images, f"{len(photos)} images of {images}"
    if m.in_chans == 3:
        photos = bundled_photos(m.img_size)
        chosen = photos.images[:count] if count else photos.images
        return chosen, (f"{len(chosen)} photos bundled with scikit-image ({', '.join(photos.names[:len(chosen)])}), "
                        f"short side resized to {m.img_size}, centre-cropped")
    test = open_dataset(config.data, m, "test")
    chosen = first_images(test, count or 256, m.img_size, m.in_chans)
    return chosen, f"{len(chosen)} test images"


def analyze_checkpoint(checkpoint: Checkpoint, images: torch.Tensor, seed: int = 0) -> list[LayerMeasures]:
    """:func:`layer_measures` on ``images`` with masks of the checkpoint's own kind and ratio."""
    cfg, mask_cfg = checkpoint.config.model, checkpoint.config.mask
    mask = make_mask(images.shape[0], cfg.grid, mask_cfg.ratio, seed, mask_cfg.kind,
                     mask_cfg.mask_patch_size, mask_cfg.min_block)
    return layer_measures(checkpoint, images, mask, mask_cfg.ratio)


@torch.no_grad()
def mask_token_similarity(model: MIMModel | Checkpoint, images: torch.Tensor) -> dict[str, np.ndarray]:
    """How close the mask token sits to real patch embeddings (both before position).

    Returns {'cosine': cos(w, e_i) for every patch embedding e_i of ``images``,
    'token_norm': |w|, 'patch_norms': |e_i|}. SimMIM, ConMIM: e_i = patch embedding; MAE,
    BootMAE: e_i = the (pixel) decoder's input for visible patches (decoder_embed of the encoder
    output).
    """
    model = model.model if isinstance(model, Checkpoint) else model
    cfg = model.config
    x = prepare_images(images, cfg.img_size, cfg.in_chans).to(next(model.parameters()).device)
    if cfg.mask_in_encoder:
        token = model.encoder.mask_token.reshape(-1)
        patches = model.encoder.patch_embed(model.normalize(x)).reshape(-1, token.numel())
    else:
        token = model.mask_token.reshape(-1)
        latent, _ = model.encoder(model.normalize(x))
        patches = model.decoder_embed(latent)[:, 1:].reshape(-1, token.numel())
    cosine = F.cosine_similarity(patches, token.unsqueeze(0), dim=-1)
    return {"cosine": cosine.cpu().numpy(), "token_norm": np.array(float(token.norm())),
            "patch_norms": patches.norm(dim=-1).cpu().numpy()}


@torch.no_grad()
def mask_layer_inputs(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens entering the first layer that sees mask tokens, before position is added:
    the patch embedding (SimMIM) or the decoder's input (MAE) at visible patches, the mask token
    w at masked ones. Every masked row is the same vector: substitutional consistency."""
    model = model.model if isinstance(model, Checkpoint) else model
    cfg = model.config
    x = prepare_images(images, cfg.img_size, cfg.in_chans).to(next(model.parameters()).device)
    mask = mask.reshape(x.shape[0], -1).to(x.device)
    if cfg.mask_in_encoder:
        token = model.encoder.mask_token
        patches = model.encoder.patch_embed(model.normalize(x))
    else:
        token = model.mask_token
        latent, _ = model.encoder(model.normalize(x))
        patches = model.decoder_embed(latent)[:, 1:]
    return torch.where(mask.unsqueeze(-1), token.to(patches.dtype), patches)


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, D) features -> (n, 2) coordinates by PCA (fast) or UMAP (15 neighbours, cosine).

    UMAP is given what it would otherwise build slowly: the exact 15 cosine neighbours from one
    matrix product (umap-learn's own small-data path calls a Python distance function n^2 times,
    and its parallel neighbour search costs seconds of compilation), a PCA start, and 200
    layout epochs. Deterministic for a given ``seed``.
    """
    if features.ndim != 2 or features.shape[0] < 3:
        raise ValueError(f"need at least 3 feature vectors (n, D) to embed, got shape {features.shape}")
    if method not in ("pca", "umap"):
        raise ValueError(f"unknown embedding '{method}'; choose 'pca' or 'umap'")
    from sklearn.decomposition import PCA

    plane = PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "pca":
        return plane
    import warnings

    import umap

    k = min(15, features.shape[0] - 1)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distance, -1.0)  # each point is its own first neighbour, as in umap-learn
    nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
    nearest_d = np.take_along_axis(distance, nearest, 1)
    order = np.argsort(nearest_d, axis=1, kind="stable")
    nearest, nearest_d = np.take_along_axis(nearest, order, 1), np.take_along_axis(nearest_d, order, 1)
    nearest_d[:, 0] = 0.0
    start = 10 * plane / max(float(np.abs(plane).max()), 1e-12)
    reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=0.1, metric="cosine", random_state=seed,
                        n_jobs=1, n_epochs=200, init=start,
                        precomputed_knn=(nearest.astype(np.int32), nearest_d.astype(np.float32), None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*transform will be unavailable", category=UserWarning)
        return reducer.fit_transform(features)


def layer_tokens(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor,
                 layer: int) -> dict[str, np.ndarray]:
    """The patch tokens of one layer, flattened for plotting.

    Returns {'features': (B * N, D), 'masked': (B * N,) bool, 'image': (B * N,) image index,
    'patch': (B * N,) patch index}; the [CLS] token is left out.
    """
    trace = token_trace(model, images, mask, hidden_layers=[layer], attention_layers=[])
    hidden, token_mask = trace.hidden[layer][:, 1:], trace.token_mask[:, 1:]
    b, n, d = hidden.shape
    return {"features": hidden.reshape(b * n, d).float().cpu().numpy(),
            "masked": token_mask.reshape(-1).cpu().numpy(),
            "image": np.repeat(np.arange(b), n), "patch": np.tile(np.arange(n), b)}


def query_attention(trace: TokenTrace, query: int, layer: int, head: int | None = None) -> np.ndarray:
    """Where patch ``query`` looks in ``layer``: (g, g) attention to the patch tokens of image 0,
    one head or (``head`` None) the mean over heads. The [CLS] key is left out, so a row sums to
    1 - its attention to [CLS]."""
    attn = trace.attn[layer][0].float()  # (H, T, T)
    row = attn.mean(0) if head is None else attn[head]
    weights = row[1 + query, 1:]
    g = int(round(weights.numel() ** 0.5))
    return weights.reshape(g, g).cpu().numpy()


def with_recalibration(model: MIMModel | Checkpoint, on: bool) -> MIMModel:
    """``model`` (the same weights, shared, not copied: a ViT-B's would take seconds) with hard
    recalibration switched on or off in every mask-token layer; the other MTO settings kept. The
    plan that decides it lives on the model object, which is a shallow copy."""
    import copy
    from dataclasses import replace

    from ..mto.plugin import plan

    model = model.model if isinstance(model, Checkpoint) else model
    config = replace(model.mto_config, hard_recalibration=on, recalibrated_layers=None)
    twin = copy.copy(model)  # its submodules and parameters are the model's own
    twin.mto_config, twin.plan = config, plan(config, model.config.mask_layers)
    return twin


@torch.no_grad()
def recalibration_views(model: MIMModel | Checkpoint, image: torch.Tensor, mask: torch.Tensor,
                        layer: int = 1) -> dict[str, np.ndarray]:
    """The full (T, T) attention of one image in ``layer``, mean over heads, without and with
    hard recalibration, same weights: {'without', 'with', 'token_mask' (T,) bool}. With it, the
    block (visible query, masked key) is exactly 0 and each visible row renormalises over
    visible keys."""
    out = {}
    for name, on in (("without", False), ("with", True)):
        trace = token_trace(with_recalibration(model, on), image[:1], mask.reshape(1, -1),
                            hidden_layers=[], attention_layers=[layer])
        out[name] = trace.attn[layer][0].float().mean(0).cpu().numpy()
        out["token_mask"] = trace.token_mask[0].cpu().numpy()
    return out


@torch.no_grad()
def masked_error_over(model: MIMModel | Checkpoint, images: torch.Tensor, ratio: float, seed: int,
                      kind: str = "random") -> dict[str, Any]:
    """Masked-patch MSE over a batch of images, each with its own mask of ``ratio``:
    {'mean', 'std' (sample), 'sem', 'n', 'errors' (per image, list)}. One image says little; this
    is the figure to compare. The same images, ratio and seed give the same masks to any model of
    the same grid, so two models' errors pair image by image."""
    from ..api import reconstruct

    model = model.model if isinstance(model, Checkpoint) else model
    mask = make_mask(images.shape[0], model.config.grid, ratio, seed, kind=kind)
    errors = reconstruct(model, images, mask).masked_error.double()
    std = float(errors.std()) if errors.numel() > 1 else 0.0
    return {"mean": float(errors.mean()), "std": std, "sem": std / max(errors.numel(), 1) ** 0.5,
            "n": int(errors.numel()), "errors": errors.tolist()}


def plot_measures(rows: list[dict], path: str, title: str = "") -> None:
    """The per-layer measures as an HTML figure, one panel per measure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = ["attn_visible_to_masked", "heterogeneity", "entropy_masked", "entropy_visible",
             "singularity", "separability_auc"]
    fig = make_subplots(rows=2, cols=3, subplot_titles=names)
    for i, name in enumerate(names):
        points = [(r["layer"], r[name]) for r in rows if r[name] is not None]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                 name=name), row=i // 3 + 1, col=i % 3 + 1)
    fig.update_layout(height=600, title=title, showlegend=False)
    # A div id from the file name, not a random one: the same runs give the same file.
    fig.write_html(path, include_plotlyjs="cdn", div_id=f"mto-{Path(path).stem}")
