"""ToyWorld under its old name: the README's `from minclip_unlearn.toyworld import toy_features` keeps working.

The world itself lives in `minclip_unlearn.worlds` (shapes, render, captions, toy_model, toy).
"""
from .worlds import *  # noqa: F401,F403
from .worlds import __all__  # noqa: F401
from .worlds.toy import checkpoint_path as cache_path  # noqa: F401  (the old name of the checkpoint's path)
