"""An encoder out to timm: mto's ViT parameter names are timm's ``VisionTransformer``'s
(``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``), so the weights
load as they are, less the mask token."""

from __future__ import annotations

from .._torchvision_compat import ensure_torchvision
from ..models.vit import MaskedViT

ensure_torchvision()
from timm.models.vision_transformer import VisionTransformer  # noqa: E402


def to_timm(encoder: MaskedViT) -> VisionTransformer:
    """A timm ``VisionTransformer`` (no head, average pooling) holding the encoder's weights."""
    depth = len(encoder.blocks)
    heads = encoder.blocks[0].attn.num_heads
    mlp_ratio = encoder.blocks[0].mlp.fc1.out_features / encoder.embed_dim
    model = VisionTransformer(img_size=encoder.grid * encoder.patch_size,
                              patch_size=encoder.patch_size, in_chans=encoder.in_chans,
                              embed_dim=encoder.embed_dim, depth=depth, num_heads=heads,
                              mlp_ratio=mlp_ratio, num_classes=0, global_pool="avg", fc_norm=False)
    state = {k: v for k, v in encoder.state_dict().items() if k != "mask_token"}
    model.load_state_dict(state, strict=True)
    return model
