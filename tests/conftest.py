"""Shared fixtures. Tests run offline: a weight fetch must fail at once, not retry."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))  # deliberate: the CI machine has 2 cores


@pytest.fixture(scope="session")
def vitb32():
    """open_clip ViT-B-32 at random init: (model, preprocess, tokenizer)."""
    from minclip_unlearn.models import load_clip

    torch.manual_seed(0)
    return load_clip("ViT-B-32")


@pytest.fixture(scope="session")
def tiny_clip():
    """A very small random-init open_clip ViT CLIP (32 px, width 64): fast enough for synthesis tests."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
        text_cfg=open_clip.CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=2, layers=1),
    )
    return model.eval()


@pytest.fixture(scope="session")
def toy_clip():
    """The ToyWorld CLIP the package ships: (model, preprocess, tokenizer)."""
    from minclip_unlearn.models import load_clip

    return load_clip("toy")
