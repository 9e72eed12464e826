"""Models across formats: mto's weights out to other libraries.

- :mod:`.timm_encoder`: an encoder as timm's ``VisionTransformer``.
"""
