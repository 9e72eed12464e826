"""The four methods on one masked ViT, and a model on disk.

- :mod:`.vit`: the masked ViT on timm's blocks, its two token paths;
- :mod:`.objective`: what the methods share (output, the MTO step, the memory check);
- :mod:`.simmim`, :mod:`.mae`, :mod:`.conmim`, :mod:`.bootmae`: the methods; :mod:`.teacher`: the
  momentum teacher of ConMIM and BootMAE;
- :mod:`.build`: a model of any method from its config;
- :mod:`.checkpoint`: weights in safetensors and the config in JSON, read and written (every
  layer above reads checkpoints, so they sit with the models, not with training).
"""
