"""Images in: Fashion-MNIST (IDX files, or the subset shipped in ``fashion-mnist-subset/``),
folders and single files of images; the patch masks; the seeded generators every draw comes from.

- :mod:`.images`: datasets as uint8 tensors, image files read and prepared for a model;
- :mod:`.streaming`: image folders and Hugging Face sets of any size, read lazily in DataLoader
  workers with MAE's augmentation, the same batches whatever the workers and processes;
- :mod:`.hf_stream`: Hugging Face sets read with ``streaming=True``, in one seeded order per
  process, decoded in workers, resumed at the saved reader position;
- :mod:`.masking`: random and block-wise patch masks;
- :mod:`.seeding`: generators of (seed, purpose, counter), so that resume and DDP draw alike;
- :mod:`.photo_crops`: a colour training set of crops of the photos installed packages ship.
"""

from . import photo_crops  # noqa: F401  registers data.dataset=photo-crops with load_dataset
