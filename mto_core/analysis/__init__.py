"""Masked vs visible tokens: per-layer measures of a model, and how they move while a run trains.

- :mod:`.measures`: a_VM, heterogeneity, entropies, singularity, separability, embeddings;
- :mod:`.trace`: the measures recorded during training (``train.trace_every``) and read back;
- :mod:`.floors`: reconstruction error beside the mean-colour and biharmonic-inpainting floors.
"""
