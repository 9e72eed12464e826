"""Write the Fashion-MNIST subset shipped in mto_core/data/fashion-mnist-subset (balanced: the
first images of each class).

Usage: python scripts/make_fashion_mnist_subset.py [--train-per-class 600] [--test-per-class 100]
"""

from __future__ import annotations

import argparse
import gzip
import struct

import numpy as np

from mto_core.data.images import SHIPPED_FASHION_MNIST, SYSTEM_FASHION_MNIST, read_idx


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    # mtime=0 keeps the bytes identical from run to run
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args()
    SHIPPED_FASHION_MNIST.mkdir(parents=True, exist_ok=True)
    for prefix, per_class in (("train", args.train_per_class), ("t10k", args.test_per_class)):
        images = read_idx(SYSTEM_FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(SYSTEM_FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
        write_idx(SHIPPED_FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz", images[keep])
        write_idx(SHIPPED_FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz", labels[keep])
        print(prefix, len(keep), "images")


if __name__ == "__main__":
    main()
