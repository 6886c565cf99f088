"""Encode every image of PACS or DomainNet once; cache the pre-projection features for the book and the CLI.

    python data_scripts/extract_features.py --model ViT-B-32 --pretrained openai --dataset pacs --root DATA --out FEATURES
    export MINCLIP_FEATURES=FEATURES     # minclip_unlearn.datasets.real_features("pacs") now finds them

Writes FEATURES/{dataset}/{model}-{tag}/ (layout: minclip_unlearn/datasets.py): float16 features of model.visual(x)
with visual.proj skipped (so any edit of visual.proj is evaluated with one matrix product), labels, domains,
relative paths, splits, and metadata (model, pretrained, preprocess, versions). Batched; cuda when available;
written in chunks, so an interrupted run continues where it stopped. A cache of another model is never mixed in.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minclip_unlearn  # noqa: E402
from data_scripts import _layout as L  # noqa: E402
from minclip_unlearn.datasets import (  # noqa: E402
    FEATURES_FILE, META_FILE, CacheCorrupt, CacheMismatch, cache_dir, check_features, check_meta, pretrained_sha256,
    pretrained_tag)
from minclip_unlearn.paradigms import grid_for  # noqa: E402

FORMAT = 1


def dataset_entries(dataset: str, root, domains=None, per_class=None, seed=0) -> tuple[Path, list[L.Entry]]:
    """(image root, listed images) of a prepared dataset; PACS's known broken file is dropped if absent or broken."""
    if dataset == "pacs":
        entries = L.pacs_entries(root, domains or L.PACS_DOMAINS)
        image_root = L.pacs_images(root)
        broken = {p for p in L.PACS_KNOWN_BAD if not (image_root / p).is_file() or L._decode(image_root / p)}
        return image_root, [e for e in entries if e.path not in broken]
    if dataset == "domainnet":
        return L.domainnet_images(root), L.domainnet_entries(root, domains or L.DOMAINNET_DOMAINS, per_class, seed)
    raise SystemExit(f"unknown dataset {dataset!r}; valid: pacs, domainnet")


def preprocess_info(model, preprocess) -> dict:
    """The preprocessing settings, as recorded in the cache."""
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    cfg.setdefault("mean", tuple(getattr(model.visual, "image_mean", ()) or ()))
    cfg.setdefault("std", tuple(getattr(model.visual, "image_std", ()) or ()))
    cfg.setdefault("size", getattr(model.visual, "image_size", None))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()} | {"repr": repr(preprocess)}


def _load(path: Path, preprocess) -> torch.Tensor:
    try:
        with Image.open(path) as im:
            return preprocess(im.convert("RGB"))
    except Exception as e:
        raise RuntimeError(f"cannot read {path} ({type(e).__name__}: {e}); run the dataset's verify command") from e


def _batches(paths: list[Path], preprocess, batch_size: int, workers: int):
    """Yield preprocessed (B, 3, H, W) batches; the next batch is decoded in threads while the model runs."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        starts = range(0, len(paths), batch_size)
        load = lambda s: pool.map(lambda p: _load(p, preprocess), paths[s:s + batch_size])  # noqa: E731
        pending = load(starts[0]) if starts else None
        for k in range(len(starts)):
            ready = pending
            pending = load(starts[k + 1]) if k + 1 < len(starts) else None  # queued now, runs during the forward
            yield torch.stack(list(ready))


@torch.inference_mode()
def encode_paths(model, preprocess, paths: list[Path], batch_size: int = 64, device: str = "cpu",
                 workers: int = 2, progress: bool = False, bar: tqdm | None = None) -> torch.Tensor:
    """Image files -> (N, D) float32 pre-projection features: model.visual(x) with visual.proj set to None.

    progress: show a bar; or pass bar, an existing tqdm to advance.
    """
    proj, out = model.visual.proj, []
    model.visual.proj = None  # open_clip's VisionTransformer skips the projection when proj is None
    own = bar is None
    bar = tqdm(total=len(paths), unit="img", desc="encoding", disable=not progress) if own else bar
    try:
        for x in _batches(paths, preprocess, batch_size, workers):
            out.append(model.visual(x.to(device, non_blocking=True)).float().cpu())
            bar.update(len(x))
    finally:
        model.visual.proj = proj
        if own:
            bar.close()
    return torch.cat(out) if out else torch.zeros(0, 0)


def entries_digest(entries: list[L.Entry]) -> str:
    return hashlib.sha256("\n".join(f"{e.path} {e.label} {e.domain} {e.split}" for e in entries).encode()).hexdigest()


def chunk_problem(feats, n_rows: int, dim: int | None) -> str | None:
    """Why a chunk's features are unusable (wrong type, row count, width, NaN/inf), or None if they are fine."""
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        return f"not an (N, D) tensor ({getattr(feats, 'shape', type(feats).__name__)})"
    if feats.shape[0] != n_rows:
        return f"{feats.shape[0]} rows for {n_rows} images"
    if dim is not None and feats.shape[1] != dim:
        return f"{feats.shape[1]}-d features, the other chunks are {dim}-d"
    if not torch.isfinite(feats).all():
        return f"{int((~torch.isfinite(feats).all(dim=1)).sum())} row(s) hold NaN or inf"
    return None


def _read_chunk(file: Path, n_rows: int, dim: int | None) -> tuple[torch.Tensor | None, str | None]:
    """A saved chunk -> (features, None) if it is whole and valid, else (None, why)."""
    try:
        feats = torch.load(file, weights_only=True)
    except Exception as e:  # truncated or not a torch file
        return None, f"unreadable ({type(e).__name__})"
    why = chunk_problem(feats, n_rows, dim)
    return (None, why) if why else (feats, None)


def _save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a file is either whole or absent."""
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_meta(meta: dict, out: Path) -> None:
    tmp = out / (META_FILE + ".part")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / META_FILE)


def extract(model, preprocess, image_root: Path, entries: list[L.Entry], out: Path, meta: dict, *,
            batch_size: int = 64, chunk_size: int = 2048, device: str = "cpu", workers: int = 2,
            overwrite: bool = False, progress: bool = True) -> Path:
    """Encode the entries into the cache folder out (resuming its chunks); returns out.

    meta must hold at least dataset, model, pretrained; versions, preprocess and counts are added here.
    An existing cache of another model, dataset or image list is refused unless overwrite.
    """
    out = Path(out)
    meta = {"format": FORMAT, **meta, "pretrained_tag": pretrained_tag(meta.get("pretrained")),
            "pretrained_sha256": pretrained_sha256(meta.get("pretrained")),
            "features": "pre-projection: model.visual(x) with visual.proj set to None", "dtype": "float16",
            "preprocess": preprocess_info(model, preprocess), "n_images": len(entries), "image_root": str(image_root),
            "entries_sha256": entries_digest(entries), "chunk_size": chunk_size, "device": device,
            "versions": {"open_clip": _version("open_clip_torch"), "torch": torch.__version__,
                         "minclip_unlearn": minclip_unlearn.__version__, "python": platform.python_version()}}
    if (out / META_FILE).is_file() and not overwrite:
        old = json.loads((out / META_FILE).read_text())
        check_meta(old, out, meta["model"], meta.get("pretrained"), meta["dataset"])
        differ = [what for what, key in [("image list (other domains or --per-class?)", "entries_sha256"),
                                          ("chunk size", "chunk_size"), ("init seed", "init_seed"),
                                          ("preprocessing", "preprocess")] if old.get(key) != meta.get(key)]
        if differ:
            raise CacheMismatch(f"the cache {out} was made with another {', '.join(differ)}; pass --overwrite to "
                                "replace it, or another --out")
        if old.get("complete"):
            try:
                blob = torch.load(out / FEATURES_FILE, map_location="cpu", weights_only=True)
                check_features(blob, out / FEATURES_FILE, old, grid_for(meta["dataset"]))
                print(f"{out}: already complete ({old['n_images']} images)")
                return out
            except Exception as e:  # missing, truncated or invalid: encode it again
                print(f"{out / FEATURES_FILE} is damaged ({str(e).split(';')[0][:200]}); encoding the cache again")
    elif out.exists() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_meta({**meta, "complete": False}, out)
    chunks, start = out / "chunks", time.time()
    chunks.mkdir(exist_ok=True)
    n_chunks = -(-len(entries) // chunk_size)
    part = lambda k: entries[k * chunk_size:(k + 1) * chunk_size]  # noqa: E731
    done, dim = {}, None
    for k in range(n_chunks):  # a resume re-reads every saved chunk; a bad one is encoded again
        file = chunks / f"{k:05d}.pt"
        if file.is_file():
            feats, why = _read_chunk(file, len(part(k)), dim)
            if why:
                print(f"{file}: {why}; encoding it again")
                file.unlink()
            else:
                done[k], dim = feats, feats.shape[1]
    if done:
        print(f"resuming: {len(done)} of {n_chunks} chunks already encoded")
    with tqdm(total=len(entries), initial=sum(len(part(k)) for k in done),
              unit="img", desc=f"encoding {meta['dataset']}", disable=not progress) as bar:
        for k in sorted(set(range(n_chunks)) - set(done)):
            paths = [e.path for e in part(k)]
            feats = encode_paths(model, preprocess, [image_root / p for p in paths], batch_size, device, workers,
                                 bar=bar).half()
            if why := chunk_problem(feats, len(paths), dim):  # float16 can overflow to inf
                bad = [p for p, ok in zip(paths, torch.isfinite(feats).all(dim=1).tolist()) if not ok][:3] \
                    if feats.ndim == 2 and len(feats) == len(paths) else []
                raise CacheCorrupt(f"chunk {k} of {out}: {why}" + (f" (e.g. {', '.join(bad)})" if bad else "")
                                   + "; nothing was saved for it: check those images and the model's weights")
            _save(feats, chunks / f"{k:05d}.pt")
            done[k], dim = feats, feats.shape[1]
    feats = torch.cat([done[k] for k in range(n_chunks)]) if n_chunks else torch.zeros(0, 0, dtype=torch.float16)
    blob = {"features": feats, "labels": torch.tensor([e.label for e in entries], dtype=torch.int16),
            "domains": torch.tensor([e.domain for e in entries], dtype=torch.int8),
            "paths": [e.path for e in entries], "splits": [e.split for e in entries]}
    check_features(blob, out / FEATURES_FILE, meta, grid_for(meta["dataset"]))
    _save(blob, out / FEATURES_FILE)
    _write_meta({**meta, "dim": int(feats.shape[1]) if len(feats) else None, "complete": True,
                 "seconds": round(time.time() - start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, out)
    shutil.rmtree(chunks)
    return out


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def load_model(name: str, pretrained: str | None, device: str, seed: int = 0):
    """(model, preprocess) via minclip_unlearn.models.load_clip; pretrained None: random init from seed."""
    import open_clip

    from minclip_unlearn.models import TOY_NAME, load_clip

    torch.manual_seed(seed)
    if name == TOY_NAME and pretrained is None:  # load_clip("toy") would train it; random init is asked for
        from minclip_unlearn.toyworld import TOY_CLIP_NAME

        model, _, preprocess = open_clip.create_model_and_transforms(TOY_CLIP_NAME, device=device)
        return model.eval(), preprocess
    model, preprocess, _ = load_clip(name, pretrained, device=device)
    return model.eval(), preprocess


def resolve_pretrained(model: str, pretrained: str | None) -> str | None:
    """--pretrained as given -> what load_model takes: default 'openai' (toy: the trained ToyWorld checkpoint,
    trained once if missing); 'none' -> None (random init)."""
    if pretrained is not None:
        return None if pretrained.lower() == "none" else pretrained
    if model != "toy":
        return "openai"
    from minclip_unlearn.models import load_clip
    from minclip_unlearn.toyworld import cache_path

    if not cache_path().is_file():
        load_clip("toy")  # trains and caches it (a few minutes, once)
    return str(cache_path())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture (or 'toy', the ToyWorld model)")
    p.add_argument("--pretrained", help="pretrained tag or checkpoint path (default: openai; for toy, the trained "
                   "ToyWorld checkpoint), or 'none' (random init from --seed, for tests)")
    p.add_argument("--dataset", required=True, choices=["pacs", "domainnet"])
    p.add_argument("--root", required=True, help="the data folder given to pacs.py / domainnet.py")
    p.add_argument("--out", required=True, help="features folder: the cache goes to OUT/{dataset}/{model}-{tag}/")
    p.add_argument("--domains", nargs="+", help="only these domains (default: all)")
    p.add_argument("--per-class", type=int, metavar="N", help="DomainNet: use the --per-class N subset lists")
    p.add_argument("--seed", type=int, default=0, help="subset seed, and init seed for --pretrained none")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=2048, help="images per resumable chunk")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--workers", type=int, default=2, help="threads decoding images")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cache in the same folder")
    a = p.parse_args(argv)
    if a.per_class and a.dataset != "domainnet":
        p.error("--per-class applies to domainnet only")
    for name in ("batch_size", "chunk_size", "workers", "threads", "per_class"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        return run(a)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (CacheMismatch, CacheCorrupt, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(a: argparse.Namespace) -> int:
    """Extract the features the parsed arguments ask for."""
    if a.threads:
        torch.set_num_threads(a.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    pretrained = resolve_pretrained(a.model, a.pretrained)
    image_root, entries = dataset_entries(a.dataset, a.root, a.domains, a.per_class, a.seed)
    out = cache_dir(a.out, a.dataset, a.model, pretrained)
    print(f"{a.dataset}: {len(entries)} images -> {out} ({a.model}, {pretrained or 'random init'}, {device})")
    model, preprocess = load_model(a.model, pretrained, device, a.seed)
    subset = {"domains": a.domains, "per_class": a.per_class, "seed": a.seed} if a.domains or a.per_class else None
    meta = {"dataset": a.dataset, "model": a.model, "pretrained": pretrained, "subset": subset,
            "init_seed": a.seed if pretrained is None else None}
    extract(model, preprocess, image_root, entries, out, meta, batch_size=a.batch_size, chunk_size=a.chunk_size,
            device=device, workers=a.workers, overwrite=a.overwrite)
    print(f"done: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
