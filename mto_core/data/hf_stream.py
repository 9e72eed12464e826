"""Hugging Face sets read with ``streaming=True`` (``data.streaming``): Parquet, Arrow or WebDataset
shards, a folder of images, or a Hub id, read as an ``IterableDataset`` without random access.

The order rule: each training process reads its raw examples (the image's bytes, not decoded) in
one fixed order, in the training process itself: ``datasets``' own shuffle (the shards' order and
a buffer of ``data.shuffle_buffer`` examples, seeded from the run's seed), pass ``p`` over the
stream with ``set_epoch(p)``, under torchrun this process's slice of it
(``datasets.distributed.split_dataset_by_node``). Only decoding and augmentation go to the
DataLoader workers, each example's crop drawn from (seed, rank, its position in this process's
stream): the batches do not depend on the number of workers.

Resume: the position of each process, (pass, examples of that pass handed out), is saved with
every checkpoint; a resumed reader starts that pass and skips its first examples without decoding
them. ``IterableDataset.state_dict()`` would jump to the shard and row instead, but it drops the
shuffle buffer (its documentation says so), so a resumed run would read other examples.

Splits: ``train`` and ``val`` are cut from the set's train split by a hash of each image's bytes
(``data.val_fraction`` of them held out), a rule that needs no order and no length; ``test`` is
the set's own test or validation split, else the held-out part. The probes read the first
examples of a split, as many as their limit asks (:meth:`StreamedImages.take`).
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

from .images import DataError, read_image
from .seeding import derive_seed
from .streaming import Batch, LazyImages, Skipped, augmented_image, load_error

HOLD_OUT_BUCKETS = 10_000
STREAM_KINDS = {".parquet": "parquet", ".arrow": "arrow", ".tar": "webdataset"}


def held_out(source: bytes | str, fraction: float) -> bool:
    """Whether an example falls in the held-out part: a hash of its bytes (or path), not its place."""
    data = source if isinstance(source, bytes) else str(source).encode()
    return zlib.crc32(data) % HOLD_OUT_BUCKETS < round(fraction * HOLD_OUT_BUCKETS)


def _load_stream(root: str):
    """The set at ``root`` as an IterableDatasetDict (``streaming=True``)."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(root)
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        raise DataError(f"{root} was written by save_to_disk, which datasets cannot stream (its Arrow files are "
                        "memory-mapped already); drop data.streaming=true to read it lazily")
    try:
        if path.exists():
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in STREAM_KINDS)
            if files:
                return datasets.load_dataset(STREAM_KINDS.get(files[0].suffix, "parquet"),
                                             data_files={"train": [str(f) for f in files]}, streaming=True)
            return datasets.load_dataset("imagefolder", data_dir=str(path), streaming=True)
        return datasets.load_dataset(root, streaming=True)
    except Exception as error:  # noqa: BLE001  (datasets raises many kinds: offline, not found, bad files)
        raise load_error(root, error) from None


def _known_length(sets, name: str, root: str) -> int | None:
    """Examples in split ``name``: from the set's metadata, or the row counts of local Parquet files."""
    info = sets[name].info
    if info.splits and name in info.splits and info.splits[name].num_examples:
        return int(info.splits[name].num_examples)
    path = Path(root)
    if name == "train" and path.exists():
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        if files and all(f.suffix == ".parquet" for f in files):
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(str(f)).metadata.num_rows for f in files)
    return None


class StreamedImages:
    """One split of a streamed Hugging Face set. ``length``: its examples where the set tells
    (approximate where the hold-out rule cuts it), else None; ``classes`` from a ClassLabel."""

    def __init__(self, root: str, split: str, val_fraction: float, shuffle_buffer: int) -> None:
        import datasets

        sets = _load_stream(root)
        name = next((n for n in ("test", "validation", "val") if n in sets), None) if split == "test" else None
        if name is None and "train" not in sets:
            raise DataError(f"the dataset {root} has no train split (its splits: {', '.join(sets)})")
        name = name or "train"
        stream = sets[name]
        features = stream.features
        columns = [n for n, f in (features or {}).items() if isinstance(f, datasets.Image)]
        if not columns:
            raise DataError(f"the dataset {root} has no image column (its columns: {', '.join(features or ())}); "
                            "give a dataset with a datasets.Image column")
        self.root, self.split, self.column, self.buffer = root, split, columns[0], shuffle_buffer
        self.label = next((n for n in ("label", "labels", "cls") if n in features), None)
        feature = features.get(self.label) if self.label else None
        self.classes = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else ()
        self.stream = stream.cast_column(self.column, datasets.Image(decode=False))  # bytes, decoded in workers
        self.fraction = val_fraction or 0.1
        self.held = None if name != "train" else split != "train"  # which side of the hold-out rule to keep
        total = _known_length(sets, name, root)
        share = 1.0 if self.held is None else (self.fraction if self.held else 1 - self.fraction)
        self.length = None if total is None else int(total * share)

    def examples(self, order_seed: int | None = None, rank: int = 0, world_size: int = 1,
                 start: tuple[int, int] = (0, 0)) -> Iterator[tuple[int, int, bytes | str, int]]:
        """(pass, examples of the pass so far, image bytes or path, label) of this process's slice:
        one pass in the set's order (``order_seed`` None), else pass after pass, each shuffled with
        ``order_seed`` and ``set_epoch(pass)``, from ``start`` (pass, examples of it to skip)."""
        stream = self.stream
        if order_seed is not None:
            stream = stream.shuffle(seed=order_seed, buffer_size=self.buffer)
        if world_size > 1:
            from datasets.distributed import split_dataset_by_node

            stream = split_dataset_by_node(stream, rank, world_size)
        number, skip = start
        while True:
            if order_seed is not None:
                stream.set_epoch(number)
            kept = 0
            for row in stream:
                cell = row[self.column]
                source = cell.get("bytes") or cell.get("path")
                if self.held is not None and held_out(source, self.fraction) != self.held:
                    continue
                kept += 1
                if kept > skip:  # skipped examples are read, never decoded
                    yield number, kept, source, int(row[self.label]) if self.label else -1
            if order_seed is None:
                return
            if kept == 0:
                raise DataError(f"process {rank} of {world_size} finds no example in its slice of {self.root}; "
                                "the set has fewer shards or examples than processes")
            number, skip = number + 1, 0

    def take(self, count: int) -> BytesImages:
        """The first ``count`` examples of the split in the set's order (0: all), held in memory
        as their encoded bytes; nothing after them is read."""
        blobs, labels = [], []
        for _, _, source, label in itertools.islice(self.examples(), count or None):
            blobs.append(source)
            labels.append(label)
        if not blobs:
            raise DataError(f"the {self.split} split of {self.root} is empty; use more images or change "
                            "data.val_fraction")
        return BytesImages(blobs, labels, self.classes, self.root)


class BytesImages(LazyImages):
    """Encoded images held in memory (a probe's bank), decoded when a batch needs them."""

    def __init__(self, blobs: list[bytes | str], labels: list[int], classes: tuple[str, ...], root: str) -> None:
        self.blobs, self.root = blobs, root
        super().__init__(torch.tensor(labels, dtype=torch.int64), classes)

    def source(self, i: int) -> bytes | str:
        return self.blobs[self.rows[i]]

    def name(self, i: int) -> str:
        return f"{self.root} example {int(self.rows[i])}"


class _DecodeStream(torch.utils.data.Dataset):
    """(position, pass, examples of the pass, source, label) -> (uint8 image, label, whether it
    could be read, pass, examples of the pass); the crop is drawn from (seed, rank, position)."""

    def __init__(self, size: int, channels: int, seed: int, rank: int, augment: bool) -> None:
        self.size, self.channels, self.seed, self.rank, self.augment = size, channels, seed, rank, augment

    def __getitem__(self, key):
        index, number, kept, source, label = key
        try:
            if self.augment:
                rng = random.Random(derive_seed(self.seed, f"stream-crop-{self.rank}", index))
                image = augmented_image(source, self.size, self.channels, rng)
            else:
                image = read_image(source, self.size, self.channels)
            ok = True
        except DataError:
            image, ok = torch.zeros(self.channels, self.size, self.size, dtype=torch.uint8), False
        return image, label, ok, number, kept


class StreamReader:
    """This process's micro-batches of a streamed set, read on from one epoch to the next.
    ``position``: (pass, examples of it) after the last micro-batch handed out, what a checkpoint
    saves; ``first``: the position in this process's stream of the next example."""

    def __init__(self, data: StreamedImages, micro_batch: int, size: int, channels: int, seed: int,
                 rank: int, world_size: int, augment: bool, workers: int, skipped: Skipped) -> None:
        self.data, self.micro_batch, self.size, self.channels = data, micro_batch, size, channels
        self.seed, self.rank, self.world_size, self.augment = seed, rank, world_size, augment
        self.workers, self.skipped = workers, skipped
        self.position: tuple[int, int] = (0, 0)
        self.first = 0
        self._batches: Iterator[Batch] | None = None

    def restore(self, state: dict | None, examples_done: int) -> None:
        """Continue from a checkpoint's ``state`` (one position per process), this process having
        handed out ``examples_done`` examples."""
        from ..config import ConfigError

        if state is None:
            raise ConfigError("this run's checkpoints were not written from a stream, so they hold no reader "
                              "position; resume it with the data settings it was started with (data.streaming)")
        if int(state["world_size"]) != self.world_size:
            raise ConfigError(f"this streamed run was checkpointed with {state['world_size']} process(es) and is "
                              f"resumed with {self.world_size}; each process reads its own slice of the stream, "
                              f"so resume it with {state['world_size']} process(es)")
        self.position = tuple(int(v) for v in state["positions"][self.rank])
        self.first = examples_done

    def state(self) -> list[int]:
        return list(self.position)

    def next_batch(self) -> Batch:
        if self._batches is None:
            self._batches = self._read()
        batch = next(self._batches)
        self.position = batch.position
        return batch

    def close(self) -> None:
        """Stop the workers and the shards' readers now (left to the garbage collector, the
        workers may wait out DataLoader's shutdown timeout)."""
        if self._batches is not None:
            self._batches.close()
            self._batches = None

    def _read(self) -> Iterator[Batch]:
        examples = self.data.examples(derive_seed(self.seed, "stream-order", 0) % 2**32, self.rank,
                                      self.world_size, self.position)

        def keys() -> Iterator[list[tuple]]:
            index = self.first
            while True:
                chunk = [(index + j, *example) for j, example in
                         enumerate(itertools.islice(examples, self.micro_batch))]
                index += len(chunk)
                yield chunk

        decode = _DecodeStream(self.size, self.channels, self.seed, self.rank, self.augment)
        loader = torch.utils.data.DataLoader(decode, batch_sampler=keys(), num_workers=self.workers)
        for images, labels, ok, numbers, kept in loader:
            bad = [j for j in range(len(ok)) if not ok[j]]
            good = [j for j in range(len(ok)) if ok[j]]
            if bad and not good:
                raise DataError(f"no image of a batch of {len(ok)} from {self.data.root} can be read; the set is "
                                "damaged: check data.root")
            for j in bad:  # the next readable image of the same batch stands in: no worker decides
                stand_in = next((g for g in good if g > j), good[0])
                images[j], labels[j] = images[stand_in], labels[stand_in]
            if bad:
                self.skipped.count += len(bad)
                self.skipped.first = (self.skipped.first
                                      or f"{self.data.root}, pass {int(numbers[bad[0]])} example {int(kept[bad[0]])}")
            yield Batch(images, labels, self.augment, (int(numbers[-1]), int(kept[-1])))
