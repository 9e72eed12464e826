"""What a checkpoint is, in words: its method's name, the layers the pages trace, a run's short
label, which pairs compare and which baseline a run is scored against. The method facts come from
mto_core's registry (``mto_core.config.METHODS``), so a registered method shows here too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mto_core.config import METHODS, RunConfig
from mto_core.models.checkpoint import CheckpointError, list_checkpoints, read_config, resolve


def method_names() -> dict[str, str]:
    """{method: display name} of every registered method, in the pickers' order."""
    return {name: facts.display for name, facts in METHODS.items()}


def method_name(method: str) -> str:
    """A method's display name ('SimMIM'); an unregistered one by its own name."""
    return METHODS[method].display if method in METHODS else method


def mask_site(model) -> str:
    """The layers of a model config that the pages trace, those that see the mask tokens: the
    encoder, or the method's decoder that MTO reads (BootMAE: its pixel decoder; MTO acts in both of
    its decoders, docs/mto-spec.md)."""
    if model.mask_in_encoder:
        return "encoder"
    return f"{method_name(model.method)} {METHODS[model.method].mto_layers}"


def mask_heads(model) -> int:
    """The attention heads of the layers :func:`mask_site` names."""
    return model.num_heads if model.mask_in_encoder else model.decoder_heads


@dataclass(frozen=True)
class RunInfo:
    """What a checkpoint or run folder holds, from its config.json alone (no weights read).

    method: a registered method ('simmim', 'mae', ...; '' when the config cannot be read); mto: any MTO part on;
    label: 'SimMIM + MTO', 'MAE (baseline)', ... from the config, not from where it was picked.
    """

    method: str
    mto: bool
    inputs: tuple[int, int, int] | None = None  # (img_size, patch_size, in_chans): what pairs share


    @property
    def label(self) -> str:
        if not self.method:
            return "unreadable checkpoint"
        return f"{method_name(self.method)} {'+ MTO' if self.mto else '(baseline)'}"


def describe_config(config: RunConfig) -> RunInfo:
    m = config.model
    return RunInfo(m.method, config.mto.enabled, (m.img_size, m.patch_size, m.in_chans))


def partners(base: str, infos: dict[str, RunInfo], labels: list[str]) -> list[str]:
    """Of ``labels`` (in order), those ``base`` can be compared with: the same method and the same
    input (image size, patch size, channels), readable, not ``base`` itself; MTO runs first when
    ``base`` is a baseline, baselines first when it is an MTO run."""
    me = infos[base]
    fit = [k for k in labels if k != base and infos[k].method == me.method and infos[k].inputs is not None
           and infos[k].inputs == me.inputs]
    return [k for k in fit if infos[k].mto != me.mto] + [k for k in fit if infos[k].mto == me.mto]


def twin(base: str) -> str:
    """The name a run's MTO partner has (``checkpoints/simmim`` -> ``checkpoints/simmim-mto``), or
    the baseline's for an MTO run."""
    return base[:-len("-mto")] if base.endswith("-mto") else f"{base}-mto"


def partner_choice(base: str, options: list[str], remembered: str | None, alone: str) -> str:
    """What *Compare with* opens on: the choice remembered if ``options`` still hold it, else the
    run's MTO twin (or its baseline) if there, else ``alone``: never a pair the page would refuse."""
    if remembered in options and remembered != base:
        return remembered
    return twin(base) if twin(base) in options else alone


def describe_run(path: str | Path) -> RunInfo:
    """:class:`RunInfo` of a run or checkpoint folder; method '' if its config cannot be read."""
    path = Path(path)
    for folder in (path, *(list_checkpoints(path)[-1:] if path.is_dir() else [])):
        try:
            return describe_config(read_config(folder))
        except (CheckpointError, OSError, ValueError, TypeError, KeyError):
            continue
    try:
        return describe_config(read_config(resolve(path)))
    except (CheckpointError, OSError, ValueError, TypeError, KeyError):
        return RunInfo("", False)


def pair_problem(baseline: RunConfig, mto: RunConfig) -> str | None:
    """Why two checkpoints cannot be compared side by side, or None.

    Their methods must match: SimMIM's error is an L1 on normalised pixels of every masked patch
    from the encoder, MAE's an MSE from a decoder, ConMIM's a contrast of features; side by side
    they would compare two objectives,
    not the effect of MTO. Image and patch sizes must match to share masks.
    """
    a, b = baseline.model, mto.model
    if a.method != b.method:
        return (f"the baseline is {method_name(a.method)} and the other checkpoint is "
                f"{method_name(b.method)}: their errors come from different objectives "
                "and models, so the comparison would not show what MTO does. Pick two checkpoints "
                "of the same method.")
    if (a.img_size, a.patch_size, a.in_chans) != (b.img_size, b.patch_size, b.in_chans):
        return (f"the checkpoints see different inputs ({a.img_size}px / {a.patch_size}px patches / "
                f"{a.in_chans} channels vs {b.img_size} / {b.patch_size} / {b.in_chans}); pick a "
                "matching pair.")
    return None


_APP_RUN = re.compile(r"^app-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(.+)$")


def short_label(label: str, width: int = 28) -> str:
    """A run's label for legends and pickers: its folder name, shortened in the middle past
    ``width``; a Train-page run (``app-20261202-004500-simmim-mto``) by its start time and variant
    (``app 00:45:00 simmim-mto``), which fits a sidebar."""
    name = label.rstrip("/").rsplit("/", 1)[-1]
    found = _APP_RUN.match(name)
    if found:
        name = f"app {found[4]}:{found[5]}:{found[6]} {found[7]}"
    if len(name) <= width:
        return name
    keep = (width - 1) // 2
    return f"{name[:keep]}…{name[-(width - 1 - keep):]}"


def baseline_for(label: str, infos: dict[str, RunInfo]) -> str | None:
    """The run among ``infos`` ({label: info}) that ``label`` should be scored against.

    A baseline of the same method with MTO off; among several, the one whose name is closest to
    ``label`` with '-mto' removed (runs/app-X-simmim-mto -> runs/app-X-simmim), then the first.
    None when the run is a baseline itself or no baseline of its method is among them.
    """
    info = infos[label]
    if not info.method or not info.mto:
        return None
    candidates = [k for k, v in infos.items() if v.method == info.method and not v.mto and k != label]
    if not candidates:
        return None
    wanted = label.replace("-mto", "")

    def shared_prefix(other: str) -> int:
        same = [x == y for x, y in zip(wanted, other)]
        return same.index(False) if False in same else len(same)

    return max(candidates, key=lambda k: (k == wanted, shared_prefix(k), -candidates.index(k)))


def seen_label(name: str, seen: list[tuple[str, bool | None]]) -> str:
    """A photo's name with whether the checkpoints trained on it, from each one's config
    (``seen``: (checkpoint label, True / False / None = not known) per checkpoint):
    'astronaut · never seen in training', 'camera · seen in training', or which one saw it."""
    known = [(label, s) for label, s in seen if s is not None]
    if not known:
        return name
    if all(s for _, s in known):
        return f"{name} · seen in training"
    if not any(s for _, s in known):
        return f"{name} · never seen in training"
    return f"{name} · seen in training by {', '.join(label for label, s in known if s)} only"
