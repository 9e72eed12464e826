"""keep_freed_memory against the real fault: page faults of training steps, counted by the kernel."""

import json
import os
import subprocess
import sys

import pytest

STEPS = """
import json, resource, sys
import torch
from mto_core.training.allocator import keep_freed_memory
from mto_core.config import preset
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
if sys.argv[2:] == ["settings-only"]:
    print(json.dumps({"kept": kept}))
    sys.exit()
torch.manual_seed(0)
config = preset("simmim")
model = build_model(config.model, config.mto)
images, mask = torch.rand(32, 1, 28, 28), make_mask(32, 7, 0.6, 0)
for _ in range(3):
    model(images, mask).loss.backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    model(images, mask).loss.backward()
print(json.dumps({"kept": kept, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4}))
"""


def _faults(mode, *extra, **env):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MTO_KEEP"))} | env
    out = subprocess.run([sys.executable, "-c", STEPS, mode, *extra], capture_output=True, text=True, check=True,
                         env=run_env).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_kept_memory_spares_the_page_faults_of_each_step():
    default, kept = _faults("default"), _faults("keep")
    assert kept["kept"] is True
    assert default["faults"] > 2000  # the instrument: without it every step faults its activations in
    assert kept["faults"] < default["faults"] / 10, (default, kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_the_environments_malloc_settings_and_the_opt_out_win():
    assert _faults("keep", "settings-only")["kept"] is True
    assert _faults("keep", "settings-only", MALLOC_TRIM_THRESHOLD_="131072")["kept"] is False
    assert _faults("keep", "settings-only", MTO_KEEP_FREED_MEMORY="0")["kept"] is False
