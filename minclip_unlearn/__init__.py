"""minclip_unlearn: make a pretrained CLIP forget, with no training and no data."""
__version__ = "0.1.0"
