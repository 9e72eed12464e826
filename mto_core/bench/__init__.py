"""``mto bench``: where a training step's time goes, and the plain PyTorch loop it is held to.

- :mod:`.measure`: speed, share of the matmul peak, MTO's cost, memory, the app's latencies;
- :mod:`.plain_loop`: plain PyTorch steps of the same shapes, the honest reference.
"""
