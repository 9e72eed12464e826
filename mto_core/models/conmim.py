"""ConMIM: masked image modeling with denoising contrast (Yi et al., ICLR 2023), scaled to 28 x 28.

The encoder sees mask tokens, as in SimMIM. A momentum teacher (:mod:`mto_core.models.teacher`: a copy
of the encoder and the head) encodes the whole image and gives each patch's target feature.
The loss is a patch-level InfoNCE with an intra-image dictionary: the student's output at a
masked position i, through the head, is pulled to the teacher's feature at i and pushed from
the teacher's features at the image's other positions,

    L = mean_{b, i in M} -log softmax_j(<s_bi, t_bj> / T)_i,   s, t unit vectors, j = 1..N,

T = ``model.contrast_temperature``. MTO acts in the encoder, exactly as in SimMIM.

The asymmetric perturbation (ConMIM's code: the student's image gets a strong colour
perturbation, the teacher's none, both sharing the crop and flip the data pipeline draws):
while training, the student's image gets, per sample, a brightness and contrast jitter (factors
in [0.6, 1.4], with probability 0.8), a 3 x 3 Gaussian blur (sigma in [0.1, 1] pixel, the
paper's blur radius scaled from 224 to 28 pixels and kept visible, probability 0.1) and a
solarization (pixels >= 0.5 inverted, probability 0.2); the teacher sees the clean image. The
perturbation's draws are a fixed hash of the sample's mask (:func:`mask_draws`): they come from
the same (seed, step) draw as the mask, so they are deterministic, the same for any number of
processes, bit-identical on resume, and free of host reads (one compiled graph). In eval mode
(the app, the probes) neither image is perturbed.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MethodFacts, ModelConfig, MTOConfig
from .objective import MIMModel, MIMOutput, masked_mean, stack_flops
from .teacher import MomentumTeacher, momentum_at
from .vit import MaskedViT, StackPath, TokenOrder, init_weights

DRAWS = 7  # jitter?, brightness, contrast, blur?, sigma, solarize?, spare


def mask_draws(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, N) bool mask, ``weights`` (K, N) in [0, 1) -> (B, K) draws in [0, 1): the fractional
    part of weighted sums of the masked positions, spread close to uniformly. Elementwise, not a
    matmul, so that autocast cannot take it to bfloat16 (whose steps of 1/8 near 30 would leave
    a handful of values)."""
    return torch.frac((mask.unsqueeze(1).to(weights.dtype) * weights).sum(-1))


def hard_perturbation(images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """The student's perturbation of images (B, C, H, W) in [0, 1] by ``draws`` (B, >= 6) in [0, 1):
    brightness/contrast jitter (p 0.8), 3 x 3 Gaussian blur (p 0.1), solarization (p 0.2)."""
    b, c, h, w = images.shape
    u = draws.to(images.dtype).view(b, -1, 1, 1, 1).unbind(1)
    x = images
    jitter = u[0] < 0.8
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    jittered = ((x * (0.6 + 0.8 * u[1]) - mean) * (0.6 + 0.8 * u[2]) + mean).clamp(0, 1)
    x = torch.where(jitter, jittered, x)
    sigma = 0.1 + 0.9 * u[4].view(b, 1, 1)
    offsets = torch.tensor([-1.0, 0.0, 1.0], device=x.device, dtype=x.dtype)
    taps = torch.exp(-(offsets.view(1, 3, 1) ** 2 + offsets.view(1, 1, 3) ** 2) / (2 * sigma**2))
    kernel = (taps / taps.sum(dim=(1, 2), keepdim=True)).repeat_interleave(c, dim=0).unsqueeze(1)
    blurred = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (1, 1, 1, 1), mode="replicate"), kernel,
                       groups=b * c).reshape(b, c, h, w)
    x = torch.where(u[3] < 0.1, blurred, x)
    return torch.where((u[5] < 0.2) & (x >= 0.5), 1 - x, x)


def patch_info_nce(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """Patch-level InfoNCE with an intra-image dictionary: pred, target (B, N, D) (normalized
    here), mask (B, N) True = masked; the mean over masked positions of the cross-entropy of
    position i among the image's N teacher features, logits <s_i, t_j> / temperature."""
    s, t = F.normalize(pred.float(), dim=-1), F.normalize(target.float(), dim=-1)
    logits = s @ t.transpose(1, 2) / temperature
    positive = logits.diagonal(dim1=1, dim2=2)
    return masked_mean(torch.logsumexp(logits, dim=-1) - positive, mask)


class ConMIM(MIMModel):
    predicts = "features"
    facts = MethodFacts("conmim", "ConMIM", mask_in_encoder=True, mto_layers="encoder", mask_ratio=0.6,
                        teacher=True)

    @classmethod
    def step_flops(cls, model: ModelConfig, ratio: float) -> float:
        n, pixels, d = model.num_patches, model.patch_size**2 * model.in_chans, model.embed_dim
        forward = 2 * n * pixels * d + stack_flops(1 + n, d, model.depth, model.mlp_ratio) + 8 * n * d * d
        return 3 * forward + forward  # the teacher's forward has no backward

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__(model, mto)
        d = model.embed_dim
        self.encoder = MaskedViT(model.img_size, model.patch_size, model.in_chans, d, model.depth,
                                 model.num_heads, model.mlp_ratio, mask_token=True, eps=model.layer_norm_eps)
        self.head = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head.apply(init_weights)
        self.teacher = MomentumTeacher(encoder=self.encoder, head=self.head)
        draws = torch.rand(DRAWS, model.num_patches, generator=torch.Generator().manual_seed(0))
        self.register_buffer("draw_weights", draws, persistent=False)

    @torch.no_grad()
    def teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's unit feature of every patch of the whole images (B, C, H, W) -> (B, N, D)."""
        tokens, _ = self.teacher.encoder(self.normalize(images))
        return F.normalize(self.teacher.head(tokens[:, 1:]).float(), dim=-1)

    def forward(self, images: torch.Tensor, mask: torch.Tensor, *, path: StackPath = TokenOrder(),
                probs_layers: Collection[int] = (), hidden_layers: Collection[int] = ()) -> MIMOutput:
        """images (B, C, H, W) in [0, 1], mask (B, N) bool True = masked.

        L_MIM = the patch InfoNCE (module docstring); pred (B, N, D) the head's unit features.
        The trace covers the encoder, whose layers see the mask token. path: the encoder's path
        (:func:`mto_core.models.vit.run_blocks`); probs_layers / hidden_layers: attention maps /
        hidden states to trace, in token order.
        """
        self.check_images(images)
        student = hard_perturbation(images, mask_draws(mask, self.draw_weights)) if self.training else images
        tokens, trace = self.encoder(self.normalize(student), mask, plan=self.plan, path=path,
                                     probs_layers=probs_layers, hidden_layers=hidden_layers)
        pred = F.normalize(self.head(tokens[:, 1:]), dim=-1)
        target = self.teacher_features(images)
        mim = patch_info_nce(pred, target, mask, self.config.contrast_temperature)
        return self.finish(mim, pred, trace)

    @torch.no_grad()
    def feature_pair(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, teacher target), both (B, N, D) unit vectors, of clean images: what the
        InfoNCE compares (:func:`mto_core.analysis.measures.feature_match_ranks`)."""
        tokens, _ = self.encoder(self.normalize(images), mask, plan=self.plan)
        return F.normalize(self.head(tokens[:, 1:]).float(), dim=-1), self.teacher_features(images)

    def after_step(self, step: int, total_steps: int) -> None:
        self.teacher.update({"encoder": self.encoder, "head": self.head},
                            momentum_at(step, total_steps, self.config.teacher_momentum))
