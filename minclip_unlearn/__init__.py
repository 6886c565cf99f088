"""minclip_unlearn: make a pretrained CLIP forget, with no training and no data.

The public API, one call per idea: load a model, name a grid, build a forget mask, compute the
cell directions, edit the model, evaluate.
"""
__version__ = "0.1.0"

from .edit import apply_projector, load_record, restore, save_edited, unlearn
from .evaluate import accuracy_matrix, embed, image_features, recovery_probe, scores, zero_shot_logits
from .models import load_clip
from .nullspace import hard_projector, orth, soft_projector
from .paradigms import ConceptGrid, forget_classes, forget_classes_in_domains, forget_domains, grid_for
from .prompts import class_embeddings, text_directions
from .prototypes import SynthesisConfig, grid_prototypes, synthesize

__all__ = [
    "load_clip", "grid_for", "ConceptGrid", "forget_classes", "forget_classes_in_domains", "forget_domains",
    "text_directions", "class_embeddings", "SynthesisConfig", "synthesize", "grid_prototypes",
    "orth", "hard_projector", "soft_projector", "unlearn", "apply_projector", "restore", "save_edited",
    "load_record", "image_features", "embed", "zero_shot_logits", "accuracy_matrix", "scores", "recovery_probe",
]
