"""Masked Token Optimization, the plug-in: what any MIM objective with mask tokens adds.

- :mod:`.plugin`: the plan (which layers each part touches) and the losses, formulas on one screen;
- :mod:`.terms`: each term computed from full maps and from the rows of a visible-first pass;
- :mod:`.attention_stats`: fused kernels that read attention rows without forming the maps;
- :mod:`.records`: what a stack of blocks records for the losses and the analysis.
"""
