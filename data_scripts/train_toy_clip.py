"""Train the ToyWorld CLIP from scratch on the CPU and write its checkpoint (a plain open_clip state_dict).

    python data_scripts/train_toy_clip.py                  # into the cache that load_clip("toy") reads
    python data_scripts/train_toy_clip.py --out toy.pt     # anywhere; then load_clip("toy", pretrained="toy.pt")

The file also loads with open_clip directly, once minclip_unlearn.toyworld is imported (it registers the config):
    open_clip.create_model_and_transforms(toyworld.TOY_CLIP_NAME, pretrained="toy.pt")
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import open_clip
import torch

from minclip_unlearn import toyworld


def main() -> None:
    """Parse the arguments, train, save atomically, report wall time and held-out accuracy per domain."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=toyworld.cache_path(), help="checkpoint path (default: %(default)s)")
    p.add_argument("--steps", type=int, default=toyworld.TRAIN_DEFAULTS["steps"])
    p.add_argument("--batch-size", type=int, default=toyworld.TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--pool-per-cell", type=int, default=toyworld.TRAIN_DEFAULTS["pool_per_cell"],
                   help="training images rendered per (class, domain) cell")
    p.add_argument("--lr", type=float, default=toyworld.TRAIN_DEFAULTS["lr"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--eval-per-cell", type=int, default=50, help="held-out test images per cell for the report")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    start = time.time()
    model = toyworld.train_toy_clip(steps=args.steps, batch_size=args.batch_size, pool_per_cell=args.pool_per_cell,
                                    lr=args.lr, seed=args.seed)
    wall = time.time() - start
    toyworld.save_atomic(model, args.out)
    model, _, _ = open_clip.create_model_and_transforms(toyworld.TOY_CLIP_NAME, pretrained=str(args.out))
    tokenizer = open_clip.get_tokenizer(toyworld.TOY_CLIP_NAME)
    test = toyworld.toy_features(model.eval(), "test", n_per_cell=args.eval_per_cell, seed=args.seed)
    accuracy = toyworld.domain_accuracy(model, tokenizer, test)
    print(f"trained in {wall:.0f} s ({args.threads} threads); checkpoint: {args.out}")
    print(f"held-out zero-shot accuracy, class-only prompts ({test.meta['name']}):")
    for domain, acc in accuracy.items():
        print(f"  {domain:<13} {100 * acc:5.1f}%")


if __name__ == "__main__":
    main()
