"""Masked vs visible tokens, layer by layer: the measures of MTO-SPEC.md ("Measures [ours]").

All measures use the layers that see mask tokens (SimMIM: encoder, MAE: decoder); layer 0 is
the input with position. r is the mask ratio (masked fraction of the patch tokens).

- a_VM^l = mean_{i in V} sum_{j in M} A^l_ij            visible-to-masked attention mass (~ r if uninformed)
- HI^l   = 1 - a_VM^l / r                                heterogeneity index
- H^l_M, H^l_V: mean row entropy of masked / visible queries, divided by log(keys)
- S^l    = 1 - mean_{i in M} max_{j in V} cos(h^l_i, h^l_j)   singularity score
- AUC^l  = ROC-AUC of a logistic-regression probe telling masked from visible patch tokens,
           fitted on the tokens of half the images, scored on the other half
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .api import token_trace
from .checkpoint import Checkpoint
from .data import prepare_images
from .masking import make_mask
from .mto import entropy_loss, recalibration_loss
from .objective import MIMModel


@dataclass
class LayerMeasures:
    layer: int
    attn_visible_to_masked: float | None
    heterogeneity: float | None
    entropy_masked: float | None
    entropy_visible: float | None
    singularity: float
    separability_auc: float

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


def layer_measures(model: MIMModel | Checkpoint, images: torch.Tensor, mask: torch.Tensor,
                   ratio: float | None = None) -> list[LayerMeasures]:
    """Every measure for every layer that sees mask tokens, on the given images and masks."""
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
            separability_auc=separability_auc(trace.hidden[layer], token_mask),
        ))
    return rows


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
    'token_norm': |w|, 'patch_norms': |e_i|}. SimMIM: e_i = patch embedding; MAE: e_i = the
    decoder's input for visible patches (decoder_embed of the encoder output).
    """
    model = model.model if isinstance(model, Checkpoint) else model
    cfg = model.config
    x = prepare_images(images, cfg.img_size, cfg.in_chans).to(next(model.parameters()).device)
    if cfg.method == "simmim":
        token = model.encoder.mask_token.reshape(-1)
        patches = model.encoder.patch_embed(model.normalize(x)).reshape(-1, token.numel())
    else:
        token = model.mask_token.reshape(-1)
        latent, _ = model.encoder(model.normalize(x))
        patches = model.decoder_embed(latent)[:, 1:].reshape(-1, token.numel())
    cosine = F.cosine_similarity(patches, token.unsqueeze(0), dim=-1)
    return {"cosine": cosine.cpu().numpy(), "token_norm": np.array(float(token.norm())),
            "patch_norms": patches.norm(dim=-1).cpu().numpy()}


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, D) features -> (n, 2) coordinates by PCA (fast) or UMAP (n_neighbors 15, cosine)."""
    if features.ndim != 2 or features.shape[0] < 3:
        raise ValueError(f"need at least 3 feature vectors (n, D) to embed, got shape {features.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine",
                            random_state=seed, n_jobs=1)
        return reducer.fit_transform(features)
    raise ValueError(f"unknown embedding '{method}'; choose 'pca' or 'umap'")


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
