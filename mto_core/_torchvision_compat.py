"""Make ``import timm`` work where torchvision's compiled ops cannot load.

timm imports torchvision. A torchvision wheel whose C++ extension does not match the
installed torch (for example a CUDA torchvision next to a CPU-only torch) fails on import
with ``RuntimeError: operator torchvision::nms does not exist``, because its Python side
registers fake kernels for ops that the missing extension should have defined.

``ensure_torchvision()`` tries the normal import first and does nothing more when it works.
Only when it fails with exactly that error does it define the two missing op schemas
(``torchvision::nms``, ``torchvision::qnms``) with ``torch.library``, drop the half-imported
modules and import again. The ops then exist without a kernel: calling ``nms`` would raise,
which is fine because this project never calls it (images are read with PIL).
"""

from __future__ import annotations

import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the torch.library.Library must stay alive for the schemas to stay defined


def ensure_torchvision() -> None:
    """Import torchvision, defining its missing op schemas first if the import needs them."""
    global _library
    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError as error:
        if "torchvision::" not in str(error) or "does not exist" not in str(error):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
        for schema in _SCHEMAS:
            _library.define(schema)
    import torchvision  # noqa: F401,F811
