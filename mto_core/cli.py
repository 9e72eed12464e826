"""The ``mto`` command: train and evaluate SimMIM / MAE with or without MTO."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import warnings

EXAMPLES = {
    "main": """examples:
  mto train --preset simmim-mto --epochs 1 --out runs/x
  mto eval runs/x --probe knn
  mto train --preset simmim-mto --out runs/no-ent --set mto.entropy_weight=0
  mto import facebook/vit-mae-base --out checkpoints/vit-mae-base && mto analyze checkpoints/vit-mae-base""",
    "train": """examples:
  mto train --preset simmim-mto --epochs 1 --out runs/x
  mto train --preset mae --max-steps 50 --batch-size 64 --out runs/mae-short
  mto train --preset simmim-mto --out runs/ablate --set mto.singularity_weight=0 --set mto.tau=0.2
  mto train --preset simmim-mto --epochs 4 --out runs/x --resume      # continue runs/x
  torchrun --nproc_per_node 2 -m mto_core.cli train --preset mae-mto --out runs/ddp
  mto train --init checkpoints/vit-mae-base --preset mae-mto --out runs/cont \
      --set data.dataset=folder --set data.root=/data/imagenet/train   # continue a model with MTO

config keys for --set (section.field=value, value read as JSON):
  {keys}""",
    "bench": """examples:
  mto bench                       # CPU: tiny preset; GPU: tiny, vit-s, vit-b
  mto bench --json > bench.json
  mto bench --method conmim --method bootmae --no-memory   # the two momentum-teacher methods only
  mto bench --set train.fused_optimizer=false     # the same, without one optimization""",
    "compare": """examples:
  mto compare runs/experiments/efficiency-cpu/*
  mto compare runs/a-s0 runs/a-s1 runs/b-s0 runs/b-s1 --baseline a --json --plot curves.html""",
    "analyze": """examples:
  mto analyze checkpoints/simmim-mto
  mto analyze runs/x --images 128 --json --plot layers.html
  mto analyze checkpoints/vit-mae-base                 # an RGB model: the photos bundled with scikit-image
  mto analyze checkpoints/vit-mae-base --images ~/photos    # or a folder of images""",
    "import": """examples:
  mto import facebook/vit-mae-base --out checkpoints/vit-mae-base     # a Hub id (needs network once)
  mto import ~/models/vit-mae-large --out checkpoints/vit-mae-large    # a transformers folder
  mto import mae_visualize_vit_large.pth --out checkpoints/mae-visualize-large   # MAE's own release
  mto import mae_pretrain_vit_base_full.pth --out checkpoints/mae-b --set model.norm_pix_loss=true""",
    "export": """examples:
  mto export checkpoints/mae --format hf --out exports/mae-hf
      # then: transformers.ViTMAEForPreTraining.from_pretrained("exports/mae-hf")
  mto export runs/x --format hf --out exports/x-hf    # a SimMIM run: ViTForMaskedImageModeling""",
    "experiment": """examples:
  mto experiment efficiency --preset cpu     # 176 min for 28 runs on 2 cores (recorded in its report);
                                             # resumes when started again
  mto experiment efficiency --preset cpu --report-only   # the report again, from docs/results/*-runs
  mto experiment efficiency --preset cpu --methods conmim,bootmae   # the same protocol on ConMIM
                                             # (12 paired seeds) and BootMAE (4)
  mto experiment efficiency --preset cpu --seeds 10      # SimMIM and MAE extended to seeds 0-9
  mto experiment finetune --preset cpu       # fine-tunes snapshots of the efficiency runs
  mto experiment ablation --preset cpu
  mto experiment efficiency --preset gpu --set data.root=DIR --time-limit 8
        # DIR: the Fashion-MNIST .gz files; 4 SimMIM and 6 MAE pairs at 28 x 28, 10 runs at once""",
    "eval": """examples:
  mto eval runs/x --probe knn
  mto eval runs/x --probe linear --json
  mto eval runs/x --probe finetune --bank-size 3000    # end to end on 3,000 labelled images
  mto eval runs/x --probe finetune --scratch           # the same schedule from random weights""",
}


def _parser() -> argparse.ArgumentParser:
    from .config import METHODS, SIZES, known_keys, preset_names

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="mto", formatter_class=fmt, epilog=EXAMPLES["main"],
                                     description="Masked Token Optimization for masked image modeling.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", formatter_class=fmt, help="pre-train a model",
                       epilog=EXAMPLES["train"].format(keys="\n  ".join(known_keys())),
                       description="Pre-train a masked image model (SimMIM, MAE, ConMIM, BootMAE or a registered one), "
                                   "with or without MTO, into a run folder.")
    p.add_argument("--preset", choices=preset_names(), help="method (default simmim-mto; not with --config, whose "
                                                      "file names its own)")
    p.add_argument("--size", choices=SIZES, default=None, help="model size (default tiny: CPU-sized)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and metrics.jsonl")
    p.add_argument("--epochs", type=int, help="epochs to train (default 10)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, help="images per process and step (default 128)")
    p.add_argument("--seed", type=int, help="seed of weights, data order, masks (default 0)")
    p.add_argument("--device", help="cpu, cuda or auto (default auto)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with that run's own config.json "
                        "unless --preset or --config is given (--epochs, --max-steps, --set still apply)")
    p.add_argument("--config", help="JSON config file (as saved in a run's config.json)")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (trained, shipped or imported by mto import); "
                        "the model's shape is the checkpoint's, the preset (default: its method with MTO) "
                        "sets the rest")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. mto.entropy_weight=0 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("eval", formatter_class=fmt, help="probe a checkpoint's features",
                       epilog=EXAMPLES["eval"],
                       description="Accuracy of a probe on the checkpoint's features, on its data's test "
                                   "split: Fashion-MNIST's test set, or for an image folder "
                                   "(data.dataset=folder) the images held out from training.")
    p.add_argument("dir", help="run folder or checkpoint folder")
    p.add_argument("--probe", choices=("knn", "linear", "finetune"), default="knn",
                   help="knn / linear: frozen features; finetune: end to end, a short fixed schedule")
    p.add_argument("--scratch", action="store_true",
                   help="the from-scratch floor: the checkpoint's architecture, randomly initialised")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default): the test set, or an image folder's held-out images; val: the "
                        "images held out from the training split (data.val_fraction; for an image folder, "
                        "the same as test)")
    p.add_argument("--bank-size", type=int, default=10000, help="training images the probe uses (0 = all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("bench", formatter_class=fmt, help="measure training speed, MTO overhead, memory",
                       epilog=EXAMPLES["bench"], description="Throughput, share of matmul peak, MTO "
                       "overhead, peak memory and app latency on this machine.")
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=10, help="timed steps per variant (default 10)")
    p.add_argument("--batch-size", type=int, default=128, help="batch of the tiny preset (default 128)")
    p.add_argument("--size", action="append", choices=SIZES, help="sizes to time (repeatable)")
    p.add_argument("--method", action="append", choices=METHODS,
                   help="methods to time (repeatable; default all four)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--no-memory", action="store_true", help="skip the training-run memory measurement")
    p.add_argument("--profile", action="store_true",
                   help="only profile a tiny SimMIM step on the CPU: top operators by time")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("compare", formatter_class=fmt, help="compare runs grouped by method",
                       epilog=EXAMPLES["compare"], description="Final accuracy (mean ± std over seeds), "
                       "RAUC against the baseline group, epochs-to-target and efficiency. Runs are grouped "
                       "by folder name without a trailing -s<seed>.")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--baseline", help="baseline group (default: the first without 'mto' in its name)")
    p.add_argument("--metric", choices=("linear_val", "knn_val"),
                   help="default: knn_val (the primary measure) where every run has it, else linear_val")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", help="write an HTML plot of accuracy vs epoch with seed bands")

    p = sub.add_parser("analyze", formatter_class=fmt, help="masked vs visible tokens, per layer",
                       epilog=EXAMPLES["analyze"], description="Per-layer measures of docs/mto-spec.md on "
                       "held-out test images: visible-to-masked attention mass, heterogeneity index, "
                       "row entropy of masked and visible queries, singularity score, separability AUC.")
    p.add_argument("dir", help="run folder or checkpoint folder")
    p.add_argument("--images", default=None, metavar="N|DIR",
                   help="a number: how many held-out test images (default 256; for an RGB model, how many of "
                        "the photos bundled with scikit-image, default all 8); a folder: its images")
    p.add_argument("--seed", type=int, default=0, help="mask seed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", help="write an HTML plot of the measures per layer")

    p = sub.add_parser("import", formatter_class=fmt, help="a published MAE or SimMIM model as an mto checkpoint",
                       epilog=EXAMPLES["import"], description="Write SOURCE as an mto checkpoint "
                       "(model.safetensors, config.json, card.md) that every command and the app read like "
                       "any other. SOURCE: a Hugging Face folder of ViTMAEForPreTraining or "
                       "ViTForMaskedImageModeling (any key layout), a Hub id (through huggingface_hub's cache; "
                       "downloaded where there is network), or an official MAE .pth (read with "
                       "torch.load(weights_only=True)). The config's origin section records where it came from.")
    p.add_argument("source", help="model folder, Hub id (owner/name) or MAE .pth file")
    p.add_argument("--out", required=True, help="a new or empty folder, e.g. checkpoints/vit-mae-base")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting the source does not carry (e.g. model.norm_pix_loss=true)")

    p = sub.add_parser("export", formatter_class=fmt, help="an MAE or SimMIM run in another library's format",
                       epilog=EXAMPLES["export"], description="Write the newest checkpoint of RUN as a "
                       "transformers folder (--format hf): ViTMAEForPreTraining for MAE, "
                       "ViTForMaskedImageModeling for SimMIM, with a preprocessor_config.json of the model's "
                       "size and normalisation. MTO's hard recalibration is part of mto's forward pass, not of "
                       "the weights: transformers' forward does not apply it (docs/interop.md).")
    p.add_argument("run", help="run folder or checkpoint folder")
    p.add_argument("--format", choices=("hf",), default="hf", help="hf: Hugging Face transformers")
    p.add_argument("--out", required=True, help="a new or empty folder")

    p = sub.add_parser("experiment", formatter_class=fmt, help="efficiency, ablation and fine-tuning experiments",
                       epilog=EXAMPLES["experiment"], description="Train every variant for every seed "
                       "on one budget (finished runs are kept and skipped, interrupted ones resumed), "
                       "then write a report generated entirely from the runs.")
    p.add_argument("kind", choices=("efficiency", "finetune", "ablation"))
    p.add_argument("--preset", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--methods", help="efficiency only: comma-separated methods, each run with and without MTO "
                                     "(default simmim,mae; e.g. conmim,bootmae, named efficiency-<preset>-conmim-bootmae)")
    p.add_argument("--out", help="runs folder (default runs/experiments/<experiment>, e.g. efficiency-cpu)")
    p.add_argument("--report", help="report file (default docs/results/<experiment>.md)")
    p.add_argument("--seeds", type=int, help="run seeds 0..N-1 of every variant: fewer than the preset's, or "
                                             "more to extend an experiment (runs already made, here or in "
                                             "its committed report, are kept; finetune: fewer only)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: render the report again from the committed run copies "
                        "(docs/results/<kind>-<preset>-runs/), or with --out from the finished runs of that folder")
    p.add_argument("--parallel", type=int, help="runs trained at once, one process each (default: 10 for "
                                                "the gpu efficiency preset, else 1)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop every run cleanly after MIN minutes; the same command resumes them")
    p.add_argument("--device", help="override the preset's device (cpu, cuda, cuda:N)")
    return parser


def _at_least(value: int | None, minimum: int, flag: str) -> None:
    from .config import ConfigError

    if value is not None and value < minimum:
        raise ConfigError(f"{flag} must be {'positive' if minimum == 1 else f'at least {minimum}'}"
                          f", got {value}")


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .experiments import compare, format_compare, plot_compare
    from .models.checkpoint import METRICS

    for run in map(Path, args.runs):
        if not (run / METRICS).is_file():
            what = "has no " + METRICS if run.is_dir() else "is a file" if run.exists() else "does not exist"
            raise ValueError(f"{run} {what}; give run folders made by mto train")
    result = compare([Path(r) for r in args.runs], args.baseline, args.metric)
    if args.plot:
        plot_compare(result, args.plot)
    print(json.dumps(result, indent=2) if args.json else format_compare(result))
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis.measures import analyze_checkpoint, analysis_images, plot_measures
    from .config import method_facts
    from .models.checkpoint import load_checkpoint

    if args.images is not None and args.images.strip().lstrip("-").isdigit():
        _at_least(int(args.images), 1, "--images")  # a count, checked before anything is read
    checkpoint = load_checkpoint(args.dir)
    images, described = analysis_images(checkpoint.config, args.images)
    rows = [r.to_dict() for r in analyze_checkpoint(checkpoint, images, args.seed)]
    if args.plot:
        plot_measures(rows, args.plot, title=str(checkpoint.path))
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint.path), "layers": rows}, indent=2))
        return 0
    model = checkpoint.config.model
    where = method_facts(model.method).mto_layers
    print(f"{checkpoint.path} ({checkpoint.config.preset}; layers that see mask tokens: {where}), {described}")
    print("| layer | a_VM | HI | H masked | H visible | singularity | separability AUC |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in rows:
        print(f"| {r['layer']} | {fmt(r['attn_visible_to_masked'])} | {fmt(r['heterogeneity'])} | "
              f"{fmt(r['entropy_masked'])} | {fmt(r['entropy_visible'])} | {fmt(r['singularity'])} | "
              f"{fmt(r['separability_auc'])} |")
    return 0


def _cmd_experiment(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    import dataclasses
    from pathlib import Path

    from .config import ConfigError, apply_overrides, preset
    from .experiments import report_only, run_experiment, write_report
    from .experiments.registry import for_methods

    if args.device:
        args.set = [*args.set, f"train.device={args.device}"]
    apply_overrides(preset("simmim"), args.set)  # fail fast on a bad key
    _at_least(args.seeds, 1, "--seeds")
    _at_least(args.epochs, 1, "--epochs")
    _at_least(args.parallel, 1, "--parallel")
    if args.time_limit is not None and not args.time_limit > 0:
        raise ConfigError(f"--time-limit must be a positive number of minutes, got {args.time_limit:g}")
    command = "mto " + " ".join(a for a in (argv or sys.argv[1:]))
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.kind == "finetune":
        if methods is not None:
            raise ConfigError("--methods applies to the efficiency experiment only, not to finetune")
        report = Path(args.report or f"docs/results/{args.kind}-{args.preset}.md")
        from .experiments.finetune import FINETUNES, run_finetune

        spec = FINETUNES[args.preset]
        if args.seeds:
            spec = dataclasses.replace(spec, seeds=spec.seeds[:args.seeds])
        source = Path(args.out or f"runs/experiments/efficiency-{args.preset}")
        path = run_finetune(spec, source, command, report, report_only=args.report_only,
                            progress=not args.quiet)
        print(path.read_text())
        return 0
    experiment = for_methods(args.kind, args.preset, methods)
    report = Path(args.report or f"docs/results/{experiment.name}.md")
    if args.seeds:
        experiment = experiment.with_seeds(args.seeds)
    if args.epochs:
        experiment = dataclasses.replace(experiment, epochs=args.epochs)
    if args.report_only:
        path = report_only(experiment, report, Path(args.out) if args.out else None)
        print(path.read_text())
        return 0
    out = Path(args.out or f"runs/experiments/{experiment.name}")
    copies = report.with_name(f"{report.stem}-runs")
    runs, _ = run_experiment(experiment, out, args.set, progress=not args.quiet,
                             parallel=args.parallel or experiment.parallel, time_limit=args.time_limit,
                             command=command, recorded=copies if copies.is_dir() else None)
    if not runs:
        print(f"no run of {out} has finished yet: run the same command again to resume them")
        return 0
    path = write_report(experiment, runs, report)
    print(path.read_text())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.measure import format_report, run_bench
    from .config import apply_overrides, preset

    apply_overrides(preset("simmim"), args.set)  # fail fast on a bad key
    _at_least(args.rounds, 1, "--rounds")
    _at_least(args.batch_size, 1, "--batch-size")
    if args.profile:
        from .bench.measure import format_profile, profile_step

        rows = profile_step(batch=args.batch_size)
        print(json.dumps(rows, indent=2) if args.json else format_profile(rows))
        return 0
    result = run_bench(args.device, args.rounds, args.batch_size, args.size, args.set, not args.no_memory,
                       args.method)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def _train_config(args: argparse.Namespace):
    from pathlib import Path

    from .config import RunConfig, apply_overrides, preset, set_size

    if args.config and args.preset:
        raise ValueError(f"give --config or --preset, not both: {args.config} sets its own method and model "
                         "(change them with --set)")
    own = Path(args.out) / "config.json" if args.out else None
    source = None
    if args.init:
        from .models.checkpoint import read_config, resolve

        source = read_config(resolve(args.init))
    if args.config:
        config = RunConfig.load(args.config)
    elif args.resume and not args.preset and own is not None and own.is_file():
        config = RunConfig.load(own)  # --resume alone continues the run with its own config
    elif source is not None:
        config = preset(args.preset or f"{source.model.method}-mto")
        if config.model.method != source.model.method:
            raise ValueError(f"--init {args.init} holds a {source.model.method} model; --preset {args.preset} "
                             f"trains {config.model.method}. Use --preset {source.model.method} or "
                             f"{source.model.method}-mto")
        config.model, config.origin = source.model, source.origin  # its shape, and where it came from
    else:
        config = preset(args.preset or "simmim-mto")
    if source is not None:
        config.train.init = str(resolve(args.init))
    if args.size:
        set_size(config, args.size)
    for flag, key in (("epochs", "epochs"), ("max_steps", "max_steps"), ("batch_size", "batch_size"),
                      ("seed", "seed"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            setattr(config.train, key, value)
    if args.max_steps is not None and args.epochs is None:
        config.train.epochs = 0
    return apply_overrides(config, args.set)


class _Interrupts:
    """The first Ctrl-C (SIGINT) asks the training loop to stop after its step, with a checkpoint;
    a second one quits at once, even in the middle of a long step. Only in one process: under
    torchrun every rank gets the signal and could stop at a different step, so there Ctrl-C
    keeps its usual meaning.

    The signals are read by a thread from Python's wakeup file descriptor, which the signal
    handler writes to the moment a signal arrives: the main thread may be inside one long
    PyTorch call (a backward pass) for seconds, and would only see the signal after it."""

    def __init__(self, out: str) -> None:
        self._event = threading.Event()
        self._out = out
        self._previous = None
        alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
        if alone and threading.current_thread() is threading.main_thread():
            read, self._write = os.pipe()
            os.set_blocking(self._write, False)
            self._previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
            self._wakeup = signal.set_wakeup_fd(self._write)
            threading.Thread(target=self._watch, args=(read,), name="ctrl-c", daemon=True).start()

    def _watch(self, read: int) -> None:
        while data := os.read(read, 64):
            for _ in range(data.count(signal.SIGINT)):
                if self._event.is_set():
                    print(f"\nmto train: interrupted again: quit at once; {_kept(self._out)}",
                          file=sys.stderr, flush=True)
                    os._exit(130)
                self._event.set()
                print("\nmto train: interrupted; finishing this step and writing a checkpoint "
                      "(Ctrl-C again to quit at once, keeping the last checkpoint)",
                      file=sys.stderr, flush=True)
        os.close(read)

    def is_set(self) -> bool:
        return self._event.is_set()

    def restore(self) -> None:
        if self._previous is not None:
            signal.set_wakeup_fd(self._wakeup)
            signal.signal(signal.SIGINT, self._previous)
            os.close(self._write)  # the watching thread reads the end of the pipe and ends


def _kept(out: str) -> str:
    """What an interrupted ``mto train --out out`` leaves, and how to go on from it."""
    from pathlib import Path

    from .models.checkpoint import list_checkpoints

    checkpoints = list_checkpoints(Path(out))
    if checkpoints:
        return (f"the last checkpoint, {checkpoints[-1]}, is kept; the same command with --resume "
                "continues from it")
    if (Path(out) / "config.json").is_file():
        return ("no checkpoint was written yet; the same command with --resume starts the run again "
                "from step 0")
    return "nothing was written; run the same command again"


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.engine import train

    if not args.out.strip():
        raise ValueError("--out is empty; give the run's folder, e.g. --out runs/x")
    config = _train_config(args)
    stop = _Interrupts(args.out)
    try:
        result = train(config, args.out, resume=args.resume, progress=not args.quiet, should_stop=stop.is_set)
    finally:
        stop.restore()
    if os.environ.get("RANK", "0") != "0":
        return 0
    if stop.is_set():
        print(f"mto train: stopped by Ctrl-C at step {result.steps}; checkpoint: {result.last_checkpoint}. "
              "The same command with --resume continues from there.", file=sys.stderr)
        return 130
    if math.isnan(result.final_loss):  # no step was left to train, so none was logged
        print(f"{args.out} is already trained to step {result.steps} ({result.epochs_done:.2f} epochs); "
              f"nothing to do. To train longer, --resume with a larger --epochs or --max-steps. "
              f"Checkpoint: {result.last_checkpoint}")
    else:
        print(f"trained {result.steps} steps ({result.epochs_done:.2f} epochs), final loss "
              f"{result.final_loss:.4f}; checkpoint: {result.last_checkpoint}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .interop.importer import import_model

    done = import_model(args.source, args.out, args.set)
    m, o = done.config.model, done.config.origin
    print(f"{done.path}: {m.method} ({m.img_size} x {m.img_size} x {m.in_chans}, width {m.embed_dim}, depth "
          f"{m.depth}) from {o.source} ({o.format}{', revision ' + o.revision if o.revision else ''})")
    for note in done.notes:
        print(f"  assumed: {note}")
    print(f"  next: mto analyze {done.path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .interop.importer import export_model
    from .models.checkpoint import read_config, resolve

    config = read_config(resolve(args.run))
    out = export_model(args.run, args.format, args.out)
    print(f"{out}: a transformers folder; load it with transformers."
          + ("ViTMAEForPreTraining" if config.model.method == "mae" else "ViTForMaskedImageModeling")
          + f".from_pretrained({str(out)!r})")
    if config.mto.hard_recalibration:
        print("  note: this run trained with MTO's hard recalibration, which lives in mto's forward pass, not in "
              "the weights; transformers' forward does not apply it, so its features without masking are the "
              "same, its masked pre-training forward is not (docs/interop.md)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .eval.schedule import evaluate_checkpoint
    from .models.checkpoint import load_checkpoint
    from .training.engine import resolve_device

    _at_least(args.bank_size, 0, "--bank-size")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.dir, device)
    if args.scratch:
        import dataclasses

        import torch

        from .models.build import build_model

        torch.manual_seed(checkpoint.config.train.seed)
        checkpoint = dataclasses.replace(
            checkpoint, model=build_model(checkpoint.config.model, checkpoint.config.mto).to(device).eval())
    result = evaluate_checkpoint(checkpoint, args.probe, args.split, args.bank_size, device,
                                 progress=not args.json)
    if args.json:
        print(json.dumps({**result.to_dict(), "checkpoint": str(checkpoint.path), "scratch": bool(args.scratch)}))
    else:
        print(f"{result.probe} probe accuracy on {result.split} ({result.test_images} images, "
              f"{result.train_images} training images): {result.accuracy:.4f}  [{checkpoint.path}"
              + (": its architecture, untrained (--scratch)]" if args.scratch else "]"))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, MTOWarning
    from .data.images import DataError
    from .models.checkpoint import CheckpointError
    from .training.run_folder import TrainingError
    from .training.runlock import RunFolderBusy

    args = _parser().parse_args(argv)
    show = warnings.showwarning

    def one_line(message, category, *rest, **kwargs):  # type: ignore[no-untyped-def]
        if issubclass(category, MTOWarning):
            print(f"mto {args.command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *rest, **kwargs)

    warnings.showwarning = one_line
    try:
        commands = {"train": _cmd_train, "eval": _cmd_eval, "bench": _cmd_bench, "compare": _cmd_compare,
                    "analyze": _cmd_analyze, "experiment": _cmd_experiment, "import": _cmd_import,
                    "export": _cmd_export}
        if args.command == "experiment":
            return _cmd_experiment(args, argv)
        return commands[args.command](args)
    except (ConfigError, CheckpointError, DataError, TrainingError, RunFolderBusy, ValueError) as error:
        print(f"mto {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    except KeyboardInterrupt:
        kept = f"; {_kept(args.out)}" if args.command == "train" else ""
        print(f"mto {args.command}: interrupted{kept}", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
