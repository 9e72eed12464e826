"""Models across formats: published MAE and SimMIM checkpoints in, mto's models out.

- :mod:`.importer`: ``mto import`` (a transformers folder, a Hub id, an official MAE ``.pth``)
  and ``mto export`` (an MAE or SimMIM run as a transformers folder);
- :mod:`.hf`: transformers' ViTMAEForPreTraining and ViTForMaskedImageModeling <-> mto's names;
- :mod:`.official_mae`: facebookresearch/mae's released files;
- :mod:`.timm_encoder`: an encoder as timm's ``VisionTransformer``;
- :mod:`.add_mto`: MTO on someone else's model (transformers' ViTMAE and MIM ViT, an MAE in
  facebookresearch/mae's layout), through :mod:`.plug_transformers` and :mod:`.plug_timm` on :mod:`.plug`.
"""
