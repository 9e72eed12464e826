"""Pre-training: the loop and what it stands on.

- :mod:`.engine`: the loop, top to bottom (plan, batches, steps, logs, probes, checkpoints);
- :mod:`.run_folder`: what a run folder may be started in, resumed or refused;
- :mod:`.runlock`: one writer per run folder; :mod:`.compiled`: ``train.compile``;
- :mod:`.allocator`: freed memory kept in the process between steps.
"""
