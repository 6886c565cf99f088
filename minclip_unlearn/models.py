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


def check_name(name: str) -> None:
    """Raise a ValueError naming close valid choices if name is not a known architecture."""
    if name != TOY_NAME and name.startswith("toy"):
        from .toyworld import TOY_CLIP_NAME

        if name == TOY_CLIP_NAME:  # its open_clip config, registered by the package: not loadable by that name
            raise ValueError(f"{name!r} is the toy CLIP's internal open_clip config; name the model {TOY_NAME!r}")
    valid = list_models()
    if name not in valid:
        near = [m for m in valid if name.lower().replace("/", "-")[:5] in m.lower()][:10] or valid[:10]
        raise ValueError(f"unknown model {name!r}; e.g. {', '.join(near)} (open_clip.list_models() has all {len(valid)})")


def check_pretrained(name: str, pretrained) -> None:
    """Raise a ValueError unless pretrained is None, an existing file, or (not for 'toy') a tag of name."""
    check_name(name)
    if pretrained is None or Path(pretrained).is_file():
        return
    if name == TOY_NAME:
        raise ValueError(f"no toy CLIP checkpoint at {str(pretrained)!r} (not a file); omit the path to use the "
                         "package's toy CLIP")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if str(pretrained) not in tags:
        raise ValueError(f"{str(pretrained)!r} is neither a file nor a pretrained tag of {name!r}; tags: {tags or 'none'}")


def _local_help(name: str, tag: str) -> str:
    """How to supply weights by hand when a tag cannot be fetched."""
    return (
        f"could not fetch pretrained weights {tag!r} for {name!r} (no network, or HF_HUB_OFFLINE=1). "
        f"Download the checkpoint on a machine with internet (e.g. open_clip.create_model_and_transforms("
        f"{name!r}, pretrained={tag!r}) there, then copy the file from ~/.cache/huggingface), and pass its path: "
        f"load_clip({name!r}, pretrained='/path/to/open_clip_pytorch_model.bin')."
    )


def _first_line(e: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def checkpoint_error(path, name: str, e: BaseException) -> ValueError:
    """A failure to load the checkpoint file path as architecture name -> one clear ValueError saying what to do."""
    if isinstance(e, RuntimeError) and ("state_dict" in str(e) or "size mismatch" in str(e)) or isinstance(
            e, AssertionError):
        why = "does not fit architecture"
        hint = "is it a checkpoint of another model? Pass --model / name the architecture it was saved from"
    else:
        why = "cannot be read as a checkpoint of"
        hint = ("it is empty, truncated, or not a PyTorch file: pass a state_dict saved with "
                "torch.save(model.state_dict(), path), e.g. the .pt that `forget` writes")
    return ValueError(f"checkpoint {str(path)!r} {why} {name!r} ({hint}): {_first_line(e)}")


def _load_toy(pretrained, device: str):
    """The ToyWorld CLIP (None: the cached/shipped one) with load errors of a given file as one ValueError."""
    from .toyworld import load_toy_clip

    check_pretrained(TOY_NAME, pretrained)
    try:
        return load_toy_clip(pretrained, device=device)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:
        if pretrained is None:
            raise
        raise checkpoint_error(pretrained, TOY_NAME, e) from e


def load_clip(name: str, pretrained: str | os.PathLike | None = None, device: str = "cpu", fetch_timeout: float = 10.0):
    """Architecture name + (None | tag | path) -> (model in eval mode, preprocess, tokenizer)."""
    if name == TOY_NAME:
        model, preprocess, tokenizer = _load_toy(pretrained, device)
        model.minclip_source = {"model": name, "pretrained": str(pretrained) if pretrained else "toyworld"}
        return model, preprocess, tokenizer
    check_pretrained(name, pretrained)
    is_file = pretrained is not None and Path(pretrained).is_file()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(fetch_timeout)  # a fetch that cannot reach its host fails within seconds
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(pretrained) if pretrained is not None else None, device=device
        )
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:  # a file: unpickling, EOF, zip, key or shape errors; a tag: no network
        if is_file:
            raise checkpoint_error(pretrained, name, e) from e
        if not isinstance(e, (RuntimeError, AssertionError, KeyError, OSError)):
            raise
        raise RuntimeError(_local_help(name, str(pretrained))) from e
    finally:
        socket.setdefaulttimeout(old_timeout)
    model.minclip_source = {"model": name, "pretrained": str(pretrained) if pretrained else None}
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def has_visual_proj(model) -> bool:
    """True if the image tower ends in a `visual.proj` matrix (open_clip VisionTransformer)."""
    return isinstance(getattr(getattr(model, "visual", None), "proj", None), torch.nn.Parameter)
