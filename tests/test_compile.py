"""torch.compile of the training forward: one graph, no host read; train.compile's eager fallback.

The graph-break test traces with backend="eager" (dynamo's tracing only, no code generation): a
graph break, such as a tensor read back to the host, fails ``fullgraph=True`` at tracing, which
is all this test asks, in seconds instead of the minutes inductor would take. The models are the
presets' own (their MTO parts included) shrunk to width 32, depth 2 (tests/conftest.py): which
code runs depends on the parts switched on, not on the sizes.
"""

import warnings

import pytest
import torch

from mto_core.training.compiled import compile_mode, compile_model
from mto_core.data.masking import hidden_count, make_mask
from mto_core.models.build import build_model
from mto_core.models.vit import TokenOrder, VisibleFirst

from .conftest import small_config


@pytest.mark.parametrize("name", ["simmim", "simmim-mto", "mae", "mae-mto", "conmim", "conmim-mto", "bootmae",
                                  "bootmae-mto"])
def test_training_and_eval_forward_compile_to_one_graph(name):
    config = small_config(name)
    model = build_model(config.model, config.mto)
    images = torch.rand(4, 1, 28, 28)
    mask = make_mask(4, config.model.grid, config.mask.ratio, 0)
    path = VisibleFirst(hidden_count(config.model.grid, config.mask))
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    out = compiled(images, mask, path=path)  # training forward, losses included
    assert set(out.mto) == ({"sing", "ent"} if name.endswith("-mto") else set())
    out.loss.backward()
    model.after_step(0, 10)  # the momentum teacher's update stays outside the compiled forward
    model.eval()
    with torch.no_grad():
        compiled(images, mask, path=path)
        torch.compile(model.features, backend="eager", fullgraph=True)(images)


def _mae_step(net, images, mask):
    return net(images, mask, path=TokenOrder()).loss  # MAE on the token-order path reads its count on the host


@pytest.mark.parametrize("backend", ["no-such-backend", "eager"])
def test_a_failed_compile_falls_back_to_eager_with_one_warning(backend):
    """Two real failures: a backend torch does not have (at torch.compile) and a graph break that
    fullgraph refuses (at the first call): both warn once and give the eager model's loss."""
    config = small_config("mae-mto")
    model = build_model(config.model, config.mto)
    images, mask = torch.rand(2, 1, 28, 28), make_mask(2, config.model.grid, config.mask.ratio, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = compile_model(model, torch.device("cpu"), backend=backend)
        losses = [_mae_step(net, images, mask) for _ in range(2)]
    messages = [str(w.message) for w in caught if "train.compile" in str(w.message)]
    assert len(messages) == 1 and "training goes on in eager mode" in messages[0]
    assert all(torch.equal(loss, _mae_step(model, images, mask)) for loss in losses)
    assert net.plan is model.plan  # attributes are the eager model's


def test_compile_mode_per_device():
    small, large = torch.nn.Linear(10, 10), torch.nn.Linear(4000, 4000)
    assert compile_mode(small, torch.device("cpu")) is None and compile_mode(large, torch.device("cpu")) is None
    assert compile_mode(small, torch.device("cuda")) == "reduce-overhead"
    assert compile_mode(large, torch.device("cuda")) is None
