"""Load a CLIP through open_clip: a pretrained tag, a local checkpoint file, or the ToyWorld model."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import open_clip
import torch

TOY_NAME = "toy"


def list_models() -> list[str]:
    """Every architecture name load_clip accepts: open_clip's, plus 'toy'."""
    return [TOY_NAME] + open_clip.list_models()


def _check_name(name: str) -> None:
    """Raise a ValueError naming close valid choices if name is not a known architecture."""
    valid = list_models()
    if name not in valid:
        near = [m for m in valid if name.lower().replace("/", "-")[:5] in m.lower()][:10] or valid[:10]
        raise ValueError(f"unknown model {name!r}; e.g. {', '.join(near)} (open_clip.list_models() has all {len(valid)})")


def _local_help(name: str, tag: str) -> str:
    """How to supply weights by hand when a tag cannot be fetched."""
    return (
        f"could not fetch pretrained weights {tag!r} for {name!r} (no network, or HF_HUB_OFFLINE=1). "
        f"Download the checkpoint on a machine with internet (e.g. open_clip.create_model_and_transforms("
        f"{name!r}, pretrained={tag!r}) there, then copy the file from ~/.cache/huggingface), and pass its path: "
        f"load_clip({name!r}, pretrained='/path/to/open_clip_pytorch_model.bin')."
    )


def load_clip(name: str, pretrained: str | os.PathLike | None = None, device: str = "cpu", fetch_timeout: float = 10.0):
    """Architecture name + (None | tag | path) -> (model in eval mode, preprocess, tokenizer)."""
    if name == TOY_NAME:
        from .toyworld import load_toy_clip

        model, preprocess, tokenizer = load_toy_clip(pretrained, device=device)
        model.minclip_source = {"model": name, "pretrained": str(pretrained) if pretrained else "toyworld"}
        return model, preprocess, tokenizer
    _check_name(name)
    is_file = pretrained is not None and Path(pretrained).is_file()
    if pretrained is not None and not is_file and str(pretrained) not in open_clip.list_pretrained_tags_by_model(name):
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(f"{str(pretrained)!r} is neither a file nor a pretrained tag of {name!r}; tags: {tags or 'none'}")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(fetch_timeout)  # a fetch that cannot reach its host fails within seconds
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(pretrained) if pretrained is not None else None, device=device
        )
    except (RuntimeError, AssertionError, KeyError, OSError) as e:
        if is_file:
            raise ValueError(
                f"checkpoint {str(pretrained)!r} does not fit architecture {name!r} "
                f"(is it a checkpoint of another model?): {str(e).splitlines()[0][:300]}"
            ) from e
        raise RuntimeError(_local_help(name, str(pretrained))) from e
    finally:
        socket.setdefaulttimeout(old_timeout)
    model.minclip_source = {"model": name, "pretrained": str(pretrained) if pretrained else None}
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def has_visual_proj(model) -> bool:
    """True if the image tower ends in a `visual.proj` matrix (open_clip VisionTransformer)."""
    return isinstance(getattr(getattr(model, "visual", None), "proj", None), torch.nn.Parameter)
