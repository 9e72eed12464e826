"""How good the features are: the probes, when and on what they run, and efficiency.

- :mod:`.probes`: k-NN, linear and fine-tuning probes on frozen or trained features;
- :mod:`.schedule`: the probe sets, a run's probe points, ``mto eval`` of a checkpoint;
- :mod:`.efficiency`: curves, RAUC, speed-up factors and their paired statistics.
"""
