"""Image folders read lazily (mto_core/data/streaming.py): the same batches whatever the workers and
processes, exact resume after a real kill, unreadable images skipped, bad folders refused."""

import gc
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from mto_core.config import ConfigError, apply_overrides, preset
from mto_core.data import streaming
from mto_core.data.streaming import (
    ImageFolder,
    LazyImages,
    mae_crop,
    read_batches,
    resolve_workers,
)
from mto_core.data.sources import open_dataset
from mto_core.models.checkpoint import list_checkpoints, read_metrics
from mto_core.training.engine import train

from .conftest import SMALL
from .test_cli import mto_here, mto_here_as


def make_folder(root, per_class=12, classes=("cat", "dog"), size=(40, 32), seed=0):
    """JPEGs of random blobs, ``per_class`` in each class sub-folder (no classes: flat)."""
    rng = np.random.default_rng(seed)
    for c in classes or ("",):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = size[0] + int(rng.integers(0, 9)), size[1] + int(rng.integers(0, 9))
            pixels = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR).save(root / c / f"{i:04d}.JPEG")
    return root


def folder_sets(root, *extra):
    return [*SMALL[:-1], "data.dataset=folder", f"data.root={root}", *extra]


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "images")


def test_folder_is_listed_not_read_and_split_like_the_in_memory_one(folder, monkeypatch):
    opened, decoded = [], []
    real, read = streaming.open_image, streaming.read_image
    monkeypatch.setattr(streaming, "open_image", lambda source: opened.append(source) or real(source))
    monkeypatch.setattr(streaming, "read_image", lambda source, *rest: decoded.append(source) or read(source, *rest))
    config = apply_overrides(preset("mae"), folder_sets(folder))
    data = open_dataset(config.data, config.model, "train")
    assert isinstance(data, LazyImages) and len(data) == 22 and data.classes == ("cat", "dog")
    assert len(opened) == min(len(data), streaming.CHECKED_IMAGES)  # the start's readability check only
    opened.clear()
    batch = next(read_batches(data, [torch.arange(4)], 28, 1))
    assert batch.images.shape == (4, 1, 28, 28) and batch.images.dtype == torch.uint8
    assert len(opened) == 0 and decoded == [data.source(i) for i in range(4)]  # the batch's images alone
    val = open_dataset(config.data, config.model, "val")
    names = {data.name(i) for i in range(len(data))}
    assert len(val) == 2 and not names & {val.name(i) for i in range(len(val))}


def test_mae_crop_keeps_its_area_and_ratio_bounds():
    rng = random.Random(0)
    for _ in range(500):
        w, h = rng.randint(20, 400), rng.randint(20, 400)
        left, top, cw, ch = mae_crop(w, h, rng)
        assert 0 <= left and left + cw <= w and 0 <= top and top + ch <= h
    areas = [cw * ch / (300 * 200) for _, _, cw, ch in (mae_crop(300, 200, rng) for _ in range(500))]
    assert 0.18 < min(areas) < 0.3 and max(areas) > 0.8  # 4/3 at most: 266 x 200 of 300 x 200


def test_two_workers_give_the_batches_of_none(folder):
    data = ImageFolder(folder)
    batches = [torch.tensor([3, 1, 4, 1]), torch.tensor([5, 9, 2, 6]), torch.tensor([5, 3, 5, 8])]
    kwargs = {"epoch": 2, "seed": 7, "augment": True}
    none = list(read_batches(data, batches, 32, 3, workers=0, **kwargs))
    two = list(read_batches(data, batches, 32, 3, workers=2, **kwargs))
    assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) for a, b in zip(none, two))
    # a sample's crop depends on (seed, epoch, its index) only, not on its batch or position
    assert torch.equal(none[1].images[0], none[2].images[0]) and torch.equal(none[1].images[0], none[2].images[2])
    other = next(read_batches(data, batches[:1], 32, 3, workers=0, epoch=3, seed=7, augment=True))
    assert not torch.equal(other.images, none[0].images)  # a new epoch, new crops


def test_training_on_a_folder_with_workers_equals_without(folder, tmp_path):
    sets = folder_sets(folder, "train.batch_size=8", "train.max_steps=3", "train.epochs=0")
    runs = {}
    for workers in (0, 2):
        config = apply_overrides(preset("mae-mto"), [*sets, f"data.workers={workers}"])
        runs[workers] = train(config, tmp_path / f"w{workers}", progress=False)
    a, b = (load_file(str(r.last_checkpoint / "model.safetensors")) for r in runs.values())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_images_are_skipped_and_counted(folder, tmp_path):
    (folder / "cat" / "0000.JPEG").write_bytes((folder / "cat" / "0000.JPEG").read_bytes()[:300])  # truncated
    (folder / "dog" / "0003.JPEG").write_text("not an image")
    config = apply_overrides(preset("mae"), folder_sets(folder, "train.batch_size=12", "train.epochs=1",
                                                        "train.log_every=1", "data.val_fraction=0.01"))
    with pytest.warns(UserWarning, match="unreadable images are skipped"):
        result = train(config, tmp_path / "run", progress=False)
    rows = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert result.steps == 2 and rows[-1]["skipped_images"] == 2 and all(np.isfinite(r["loss"]) for r in rows)


def test_bad_folders_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    broken = make_folder(tmp_path / "broken", per_class=6)
    for path in sorted(broken.rglob("*.JPEG"))[:8]:
        path.write_bytes(b"\xff\xd8 broken")
    for root, words in ((empty, "holds no images"), (broken, "cannot be read"),
                        (tmp_path / "missing", "does not exist")):
        out = tmp_path / f"run-{root.name}"
        result = mto_here(capsys, "train", "--preset", "mae", "--out", str(out), "--quiet", "--max-steps", "1",
                          *[a for s in folder_sets(root) for a in ("--set", s)])
        assert result.returncode == 1 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_workers_beyond_the_cores_are_refused(folder, tmp_path):
    too_many = streaming.available_cores() + 1
    with pytest.raises(ConfigError, match=f"data.workers={too_many} asks for"):
        resolve_workers(too_many, 1)
    assert 0 <= resolve_workers(None, 1) <= 8
    config = apply_overrides(preset("mae"), folder_sets(folder, f"data.workers={too_many}", "train.max_steps=1"))
    with pytest.raises(ConfigError, match="more than the"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="data.workers must be >= 0"):
        apply_overrides(preset("mae"), ["data.workers=-1"])


def test_probes_read_a_folder_lazily_with_the_bank_limit(folder, tmp_path, capsys):
    run = tmp_path / "run"
    sets = folder_sets(folder, "train.batch_size=8", "data.val_fraction=0.25")
    mto_here(capsys, "train", "--preset", "mae", "--out", str(run), "--quiet", "--max-steps", "1",
             *[a for s in sets for a in ("--set", s)], check=True)
    result = json.loads(mto_here(capsys, "eval", str(run), "--probe", "knn", "--json", "--bank-size", "10",
                                 "--split", "val").stdout)
    assert result["train_images"] == 10 and result["test_images"] == 6 and 0 <= result["accuracy"] <= 1


def _command(out, folder, workers):
    sets = folder_sets(folder, "train.batch_size=4", "train.epochs=4", "train.log_every=1",
                       "train.keep_checkpoints=2", "train.checkpoint_every=1", f"data.workers={workers}")
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", "mae-mto", "--out", str(out), "--quiet",
            *[a for s in sets for a in ("--set", s)]]


def _logged(run):
    try:
        return [r["step"] for r in read_metrics(run) if r.get("kind") == "train"]
    except (OSError, ValueError):
        return []


def test_sigkill_and_resume_on_a_folder_ends_with_the_uninterrupted_weights(folder, tmp_path, capsys):
    reference = tmp_path / "reference"
    mto_here_as(capsys, _command(reference, folder, 0))
    last = max(p.name for p in list_checkpoints(reference))
    total = int(last.split("-")[1])
    run, rng, kills = tmp_path / "killed", random.Random(0), 0
    for _ in range(4):
        args = _command(run, folder, 1) + (["--resume"] if (run / "config.json").exists() else [])
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target, deadline = rng.randint(1, total - 2), time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline and max(_logged(run), default=0) < target:
            time.sleep(0.01)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 2
    mto_here_as(capsys, _command(run, folder, 1) + ["--resume"])
    a = load_file(str(reference / last / "model.safetensors"))
    b = load_file(str(run / last / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


READER = """
import json, sys
import torch
import mto_core
import mto_core.data.streaming as streaming
from mto_core.config import apply_overrides, preset
from mto_core.data.sources import open_dataset
from mto_core.training.engine import batches, init_distributed, make_plan

read = []
real = streaming.augmented_image
streaming.augmented_image = lambda source, *rest: read.append(source) or real(source, *rest)
config = apply_overrides(preset("mae"), json.loads(sys.argv[1]))
info = init_distributed(torch.device("cpu"))
data = open_dataset(config.data, config.model, "train")
plan = make_plan(config, len(data), info.world_size)
images = [micro[0][0].tolist() for micro in batches(data, config, plan, 0, 0, info)]
json.dump({"read": read, "images": images}, open(sys.argv[2] + f"/rank{info.rank}.json", "w"))
"""


def test_torchrun_processes_read_disjoint_slices_of_the_same_global_batches(folder, tmp_path):
    script = tmp_path / "reader.py"
    script.write_text(READER)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = tmp_path / "two"
    two.mkdir()
    result = subprocess.run([*torchrun, str(script), json.dumps(folder_sets(folder, "train.batch_size=3",
                                                                            "data.workers=0")), str(two)],
                            check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    one = tmp_path / "one"
    one.mkdir()
    subprocess.run([sys.executable, str(script), json.dumps(folder_sets(folder, "train.batch_size=6",
                                                                        "data.workers=0")), str(one)],
                   check=True, env=env, timeout=300)
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1)]
    alone = json.loads((one / "rank0.json").read_text())
    assert ranks[0]["read"] and not set(ranks[0]["read"]) & set(ranks[1]["read"])
    assert sorted(ranks[0]["read"] + ranks[1]["read"]) == sorted(alone["read"])
    for step, images in enumerate(alone["images"]):  # each rank's slice of the one process's batch
        assert images == ranks[0]["images"][step] + ranks[1]["images"][step]


def _hf_set(tmp_path, folder):
    import datasets

    files = sorted(folder.rglob("*.JPEG"))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    rows = {"image": [str(f) for f in files], "label": [0 if f.parent.name == "cat" else 1 for f in files]}
    data = datasets.Dataset.from_dict(rows, features=features)
    data.to_parquet(str(tmp_path / "set.parquet"))
    datasets.DatasetDict(train=data, test=data.select(range(5))).save_to_disk(str(tmp_path / "saved"))
    return data


def _shards(tmp_path, hf):
    """The set as two WebDataset tar shards (``KEY.jpg`` and ``KEY.cls`` members)."""
    import io
    import tarfile

    (tmp_path / "shards").mkdir()
    for shard in range(2):
        with tarfile.open(tmp_path / "shards" / f"part-{shard:06d}.tar", "w") as tar:
            for row in range(shard, len(hf), 2):
                image = io.BytesIO()
                hf[row]["image"].save(image, "JPEG")
                for name, data in ((f"{row:05d}.jpg", image.getvalue()), (f"{row:05d}.cls", str(hf[row]["label"]).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return tmp_path / "shards"


def test_hugging_face_sets_from_parquet_save_to_disk_and_tar_shards_train_and_probe(folder, tmp_path, capsys,
                                                                                    monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    hf = _hf_set(tmp_path, folder)
    for root in (tmp_path / "set.parquet", tmp_path / "saved", _shards(tmp_path, hf)):
        config = apply_overrides(preset("mae"), [*SMALL[:-1], "data.dataset=hf", f"data.root={root}"])
        data = open_dataset(config.data, config.model, "train")
        assert isinstance(data, LazyImages) and len(data) == 22
        assert data.classes == (() if root.name == "shards" else ("cat", "dog"))
        batch = next(read_batches(data, [torch.arange(3)], 28, 1, augment=True, seed=1))
        row = int(data.rows[0])
        row = int(data.dataset[row]["__key__"]) if root.name == "shards" else row  # a shard's key: the row
        assert batch.images.shape == (3, 1, 28, 28) and int(batch.labels[0]) == hf[row]["label"]
    assert len(open_dataset(config.data, config.model, "test")) == 2  # shards: no test split, the held-out part
    config = apply_overrides(preset("mae"), [*SMALL[:-1], "data.dataset=hf", f"data.root={tmp_path / 'saved'}"])
    assert len(open_dataset(config.data, config.model, "test")) == 5  # the saved set's own test split
    run = tmp_path / "run"
    sets = [*SMALL[:-1], "data.dataset=hf", f"data.root={tmp_path / 'saved'}", "train.batch_size=8"]
    mto_here(capsys, "train", "--preset", "mae", "--out", str(run), "--quiet", "--max-steps", "2",
             *[a for s in sets for a in ("--set", s)], check=True)
    result = json.loads(mto_here(capsys, "eval", str(run), "--json", "--bank-size", "10").stdout)
    assert result["test_images"] == 5 and result["train_images"] == 10


def test_a_hub_id_not_in_the_cache_is_refused_in_one_line_offline(tmp_path, capsys, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for a datasets imported after this line
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # and for one imported already
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    out = tmp_path / "run"
    result = mto_here(capsys, "train", "--preset", "mae", "--out", str(out), "--quiet", "--max-steps", "1",
                      *[a for s in [*SMALL[:-1], "data.dataset=hf", "data.root=someone/no-such-set"]
                        for a in ("--set", s)])
    assert result.returncode == 1 and "cannot be loaded" in result.stderr and "cache" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_the_trace_batch_of_a_folder_decodes_only_its_images(folder, monkeypatch):
    from mto_core.analysis.trace import trace_batch

    decoded = []
    read = streaming.read_image
    monkeypatch.setattr(streaming, "read_image", lambda source, *rest: decoded.append(source) or read(source, *rest))
    config = apply_overrides(preset("mae"), folder_sets(folder, "data.val_fraction=0.5"))
    images, mask = trace_batch(config)
    assert images.shape[1:] == (1, 28, 28) and images.shape[0] == mask.shape[0] == len(decoded) <= 12


# --- Hugging Face sets read with streaming=True (mto_core/data/hf_stream.py) ---


@pytest.fixture
def shards(folder, tmp_path, monkeypatch):
    """The folder's 24 images (their bytes) as four Parquet shards; datasets' pause after a shuffled pass
    (its wait for Arrow's reading threads) kept short."""
    import datasets

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.05)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    _hf_set(tmp_path, folder)  # the save_to_disk folder a stream refuses
    files = sorted(folder.rglob("*.JPEG"))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    hf = datasets.Dataset.from_dict({"image": [{"bytes": f.read_bytes(), "path": None} for f in files],
                                     "label": [int(f.parent.name == "dog") for f in files]}, features=features)
    (tmp_path / "parquet").mkdir()
    for shard in range(4):
        hf.shard(4, shard, contiguous=True).to_parquet(str(tmp_path / "parquet" / f"part-{shard}.parquet"))
    yield tmp_path / "parquet"
    gc.collect()  # the test's suspended readers close now, while the pause is still short


def stream_sets(root, *extra):
    return [*SMALL[:-1], "data.dataset=hf", f"data.root={root}", "data.streaming=true", "data.shuffle_buffer=8",
            *extra]


def test_a_stream_reads_the_same_batches_with_two_workers_and_none(shards):
    from mto_core.data.hf_stream import StreamedImages, StreamReader

    config = apply_overrides(preset("mae"), stream_sets(shards))
    data = open_dataset(config.data, config.model, "train")
    assert isinstance(data, StreamedImages) and data.classes == ("cat", "dog")
    assert data.length == int(24 * 0.9)  # the Parquet files' row count, less the held-out share
    runs = {}
    for workers in (0, 2):
        reader = StreamReader(data, 4, 32, 3, 7, 0, 1, True, workers, streaming.Skipped())
        runs[workers] = [reader.next_batch() for _ in range(12)]  # over two passes
        reader.close()
    assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.position == b.position
               for a, b in zip(runs[0], runs[2]))
    passes = [b.position[0] for b in runs[0]]
    assert passes[0] == 0 and passes[-1] >= 1  # a pass ends, the next (reshuffled) one follows
    # the held-out part stays out of training, and is what the probes' val split reads
    val = open_dataset(config.data, config.model, "val").take(0)
    train = data.take(0)
    assert len(train) + len(val) == 24 and not set(train.blobs) & set(val.blobs)


def test_two_ranks_read_disjoint_slices_of_a_stream(shards):
    config = apply_overrides(preset("mae"), stream_sets(shards, "data.val_fraction=0.01"))
    data = open_dataset(config.data, config.model, "train")
    one = [s for _, _, s, _ in itertools.islice(data.examples(5), 24)]  # the first pass of one process
    ranks = [[s for _, _, s, _ in itertools.islice(data.examples(5, rank, 2), 12)] for rank in (0, 1)]
    kept = len([s for _, _, s, _ in data.examples()])
    assert len(one[:kept]) == kept and all(len(r) == 12 for r in ranks)
    assert not set(ranks[0]) & set(ranks[1]) and set(ranks[0]) | set(ranks[1]) == set(one[:kept])


def test_unreadable_images_of_a_stream_are_replaced_within_their_batch_and_counted(shards, tmp_path):
    import datasets

    from mto_core.data.hf_stream import StreamReader

    good = datasets.load_dataset("parquet", data_files=[str(p) for p in sorted(shards.iterdir())], split="train")
    rows = good.cast_column("image", datasets.Image(decode=False)).to_dict()
    rows["image"][3] = rows["image"][10] = {"bytes": b"not an image", "path": None}
    bad = tmp_path / "bad"
    bad.mkdir()
    datasets.Dataset.from_dict(rows, features=good.features).to_parquet(str(bad / "part-0.parquet"))
    config = apply_overrides(preset("mae"), stream_sets(bad, "data.val_fraction=0.01"))
    data = open_dataset(config.data, config.model, "train")
    whole = len(data.take(0).blobs)
    skipped = streaming.Skipped()
    reader = StreamReader(data, whole, 32, 3, 0, 0, 1, False, 0, skipped)
    batch = reader.next_batch()  # one pass, one batch
    reader.close()
    assert skipped.count == sum(b == b"not an image" for b in data.take(0).blobs) == 2 and "pass 0" in skipped.first
    assert all(batch.images[i].any() for i in range(whole))  # each stood in for by a readable one


def _stream_run(shards, *extra):
    sets = stream_sets(shards, "train.batch_size=4", "train.max_steps=5", "train.checkpoint_every=2",
                       "data.val_fraction=0.5", "data.workers=0", *extra)
    return apply_overrides(preset("mae-mto"), sets)


def test_an_interrupted_stream_resumes_to_the_uninterrupted_weights(shards, tmp_path):
    reference = train(_stream_run(shards), tmp_path / "reference", progress=False)
    calls = []
    stopped = train(_stream_run(shards), tmp_path / "cut", progress=False,
                    should_stop=lambda: calls.append(1) or len(calls) >= 4)  # 16 examples in: the stream's 2nd pass
    state = torch.load(stopped.last_checkpoint / "train_state.pt", weights_only=True)
    assert stopped.steps == 4 and state["stream"]["world_size"] == 1 and state["stream"]["positions"][0][0] == 1
    # a checkpoint written by two processes: resuming with one is refused before the metrics are trimmed
    with (tmp_path / "cut" / "metrics.jsonl").open("a") as f:  # a row logged after the checkpoint, then killed
        f.write(json.dumps({"kind": "train", "step": 5, "loss": 1.0}) + "\n")
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_bytes()
    two = {**state, "stream": {**state["stream"], "world_size": 2}}
    torch.save(two, stopped.last_checkpoint / "train_state.pt")
    with pytest.raises(ConfigError, match="checkpointed with 2 process"):
        train(_stream_run(shards), tmp_path / "cut", resume=True, progress=False)
    assert (tmp_path / "cut" / "metrics.jsonl").read_bytes() == metrics
    torch.save(state, stopped.last_checkpoint / "train_state.pt")
    resumed = train(_stream_run(shards, "data.workers=2"), tmp_path / "cut", resume=True, progress=False)
    assert reference.steps == resumed.steps == 5
    a = load_file(str(reference.last_checkpoint / "model.safetensors"))
    b = load_file(str(resumed.last_checkpoint / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stream_probes_read_only_their_limit_and_bad_asks_are_refused(shards, tmp_path, capsys, monkeypatch):
    from mto_core.data.hf_stream import StreamedImages
    from mto_core.eval.schedule import probe_sets

    read = []
    real = StreamedImages.examples
    monkeypatch.setattr(StreamedImages, "examples", lambda self, *a: (read.append(x) or x for x in real(self, *a)))
    monkeypatch.setattr(streaming, "CHECKED_IMAGES", 3)
    bank, test = probe_sets(apply_overrides(preset("mae"), stream_sets(shards, "data.val_fraction=0.3")), 5, 2)
    assert len(bank) == 5 and len(test) == 2 and len(read) == 3 + 5 + 3 + 2  # the checks, the bank, the test set
    monkeypatch.setattr(datasets_config(), "HF_HUB_OFFLINE", True)
    tars = _shards(tmp_path, _hf_set(tmp_path, shards.parent / "images"))
    for sets, words in ((folder_sets(shards, "data.streaming=true"), "needs data.dataset=hf"),
                        (stream_sets(tmp_path / "saved"), "cannot stream"),
                        (stream_sets("someone/no-such-set"), "cannot be loaded"),
                        (stream_sets(tars), "set train.max_steps")):
        out = tmp_path / f"run-{len(words)}"
        result = mto_here(capsys, "train", "--preset", "mae", "--out", str(out), "--quiet",
                          *[a for s in sets for a in ("--set", s)])
        assert result.returncode in (1, 2) and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def datasets_config():
    import datasets

    return datasets.config
