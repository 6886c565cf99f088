"""The worlds the book runs on offline: ToyWorld (images, captions, a shipped toy CLIP) and the dial world
(an embedding-level synthetic CLIP whose interaction strength kappa is a dial).

- `shapes`, `render`: what ToyWorld draws (33 classes x 10 styles; the book's grid is 7 x 4 of them);
- `captions`: what its captions say, and the toy CLIP's word-level tokenizer;
- `toy_model`: the toy CLIP's config and training recipe (`data_scripts/train_toy_clip.py` runs it);
- `toy`: the grid as a dataset, the shipped checkpoint, features cached per model;
- `dial`: the dial world.
"""
from .captions import ToyTokenizer
from .render import IMAGE_SIZE
from .toy import (ToyWorld, checkpoint_meta, checkpoint_path, domain_accuracy, load_toy_clip, sample_grid_figure,
                  toy_features, toy_images)
from .toy_model import TOY_CLIP_NAME, tokenizer

__all__ = ["ToyTokenizer", "IMAGE_SIZE", "ToyWorld", "checkpoint_meta", "checkpoint_path", "domain_accuracy",
           "load_toy_clip", "sample_grid_figure", "toy_features", "toy_images", "TOY_CLIP_NAME", "tokenizer"]
