"""Command line: `forget` edits a CLIP and writes the checkpoint and its record; `evaluate` measures an edited
checkpoint; `info` says what it forgot.

    python -m minclip_unlearn forget --model toy --dataset toyworld --classes star --rho 0.8 --out edited.pt
    python -m minclip_unlearn evaluate edited.pt --plot
    python -m minclip_unlearn info edited.pt          # --json: the raw record

Every argument is checked before any slow work; a bad one ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from . import edit, paradigms, prompts, prototypes
from .cache import atomic_write
from .models import TOY_NAME, check_pretrained, load_clip

DATASETS = ("pacs", "domainnet", "toyworld")
TOY_DATASETS = ("toyworld",)  # the only data the toy CLIP has seen
GEOMETRY_CHAPTER = "What a linear edit can forget"
INTERRUPTED = "interrupted; nothing was written: run the same command again"


class UsageError(ValueError):
    """An argument that cannot work; raised before any model is loaded."""


# ---------------------------------------------------------------- checks that need no model
def build_mask(grid: paradigms.ConceptGrid, classes: list[str] | None, domains: list[str] | None) -> torch.Tensor:
    """--classes / --domains -> (C, M) mask: global, domain-specific, or complete-domain forgetting."""
    if classes and domains:
        return paradigms.forget_classes_in_domains(grid, classes, domains)
    if classes:
        return paradigms.forget_classes(grid, classes)
    if domains:
        return paradigms.forget_domains(grid, domains)
    raise UsageError("name what to forget: --classes, --domains, or both")


def check_number(name: str, value: float, low: float, high: float = math.inf, low_open: bool = False) -> None:
    """Raise UsageError unless value is finite and in [low, high] ((low, high] if low_open)."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise UsageError(f"--{name} must be {'in ' if math.isfinite(high) else ''}{interval}, got {value}")


def check_pair(model: str, dataset: str) -> None:
    """Refuse a model/dataset pair whose edit cannot mean anything (the toy CLIP knows only ToyWorld)."""
    if model == TOY_NAME and dataset not in TOY_DATASETS:
        raise UsageError(f"the toy CLIP has never seen {dataset} (it knows only ToyWorld's shapes and styles): use "
                         f"--dataset toyworld, or a real CLIP for {dataset} (e.g. --model ViT-B-32 --pretrained openai)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike, overwrite: bool, protect: tuple = ()) -> None:
    """Raise unless path can be written: not a folder, not an input in protect, its folder writable, and absent
    unless overwrite (FileExistsError)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; pass a file name (e.g. {path / 'edited.pt'})")
    for p in protect:
        if p is not None and (_same_file(path, Path(p)) or path.resolve() == Path(p).resolve()):
            raise UsageError(f"{path} is an input of this command; write the result to another file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or another name")
    folder = next((d for d in [path.parent, *path.parent.parents] if d.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: {folder} is not a writable folder")


def knobs(args: argparse.Namespace) -> dict:
    """The method knobs given on the command line (the others take the method's defaults)."""
    return {k: getattr(args, k) for k in ("alpha", "rho", "lam", "mu") if getattr(args, k) is not None}


def check_forget_args(args: argparse.Namespace) -> torch.Tensor:
    """Validate every forget argument without loading a model; returns the (C, M) forget mask."""
    check_pair(args.model, args.dataset)
    for name, low, high, low_open in (("alpha", 0, 1, False), ("rho", 0, 1, True), ("lam", 0, math.inf, False),
                                      ("mu", 0, math.inf, False)):
        if getattr(args, name) is not None and not (name == "rho" and args.rho == "auto"):
            check_number(name, getattr(args, name), low, high, low_open)
    try:  # each method's own checks (e.g. the logit method's lam > 0), still before any model work
        edit.settings_for(args.method, **knobs(args))
    except ValueError as e:
        raise UsageError(f"--method {args.method}: {e}") from e
    for name in ("prototypes", "steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    mask = build_mask(paradigms.grid_for(args.dataset), args.classes, args.domains)
    out, rec = Path(args.out), edit.record_path(args.out)
    if out.suffix.lower() == ".json" or rec == out:
        raise UsageError(f"--out {out}: the record is written beside the checkpoint as {rec.name}, so the checkpoint "
                         "cannot be a .json file; use e.g. --out edited.pt")
    check_pretrained(args.model, args.pretrained)
    for p in (out, rec):
        check_output(p, args.overwrite, protect=(args.pretrained,))
    return mask


# ---------------------------------------------------------------- measuring
def _fmt(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


GROUPS = {"forget": "forget (the masked cells)", "retain": "retain (all other cells)",
          "same_class_other_domains": "  same class, other domains", "other_classes": "  other classes"}


def score_table(before: dict | None, after: dict, source: str) -> str:
    """Forget / retain / off-target accuracy before and after an edit, as printed lines."""
    lines = [f"zero-shot accuracy on {source}:", f"  {'':30s} {'before' if before else '':>7s}  {'after':>7s}"]
    for key, label in GROUPS.items():
        if after.get(key) == after.get(key):  # NaN: the group has no image (e.g. a complete-domain mask)
            lines.append(f"  {label:30s} {_fmt(before[key]) if before else '':>7s}  {_fmt(after[key]):>7s}")
    return "\n".join(lines)


def eval_features(model_name: str, pretrained, dataset: str, model=None):
    """The FeatureSet to measure an edit on, or None: ToyWorld's test images, or the cached real test split."""
    if dataset in TOY_DATASETS:
        from .toyworld import toy_features

        return toy_features(model)
    from .datasets import real_features

    feats = real_features(dataset, model_name, pretrained)
    if feats is None:
        return None
    return feats.get("test") or feats.get("crossval") or feats["all"]


def _no_features_note(model: str, dataset: str) -> str:
    return (f"note: no cached {dataset} features for {model}, so accuracy is not measured; to measure it, extract "
            "them once (data_scripts/extract_features.py, see the README's 'Real data') and set MINCLIP_FEATURES")


def _geometry(name: str):
    """A function of minclip_unlearn.geometry, or None where this version of the package has none."""
    try:
        from . import geometry
    except ImportError:
        return None
    return getattr(geometry, name, None)


def _low_share_message(share: float) -> str:
    """The one-line warning for an edit that removes almost nothing (geometry's wording when it has one)."""
    message = _geometry("low_forgettability_message")
    if message is not None:
        return message(share)
    return (f"the edit removes almost nothing: only {100 * share:.0f}% of the forget directions lie outside the "
            f"protected retain span; see the book's chapter '{GEOMETRY_CHAPTER}' (lower --rho)")


def warning_lines(share: float | None, record: dict, before: dict | None, after: dict | None,
                  caught: list[str]) -> list[str]:
    """What to warn about after an edit: at most one 'removes almost nothing' line, read from the best evidence at
    hand (forgettability < 0.1; else measured forget accuracy falling by < 10 points; else >90% of the forget
    directions' norm kept), plus any other warning the edit raised."""
    lines = [" ".join(m.split()) for m in caught if "removes almost nothing" not in m]
    hint = f"try a lower --rho, or --rho auto; see the book's chapter '{GEOMETRY_CHAPTER}'"
    drop = before["forget"] - after["forget"] if before and after and before["forget"] == before["forget"] else None
    if share is not None and share < 0.1:
        lines.append(_low_share_message(share))
    elif drop is not None and drop < 0.1:
        lines.append(f"the edit forgot almost nothing: forget accuracy fell by {100 * drop:.1f} points only "
                     f"({100 * before['forget']:.1f}% -> {100 * after['forget']:.1f}%); {hint}")
    elif drop is None and record.get("forget_norm_kept", 0) > 0.9:
        lines.append(f"the forget directions keep {100 * record['forget_norm_kept']:.1f}% of their norm: the edit "
                     f"removes almost nothing; {hint}")
    return lines


def rho_value(text: str) -> float | str:
    """--rho: a number, or 'auto' (geometry.auto_rho: the largest rho whose edit removes enough)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] or 'auto', got {text!r}") from None


def _resolve(pretrained: str | None) -> str | None:
    """A checkpoint path made absolute (so the record still finds it from another folder); tags unchanged."""
    return str(Path(pretrained).resolve()) if pretrained is not None and Path(pretrained).is_file() else pretrained


# ---------------------------------------------------------------- commands
def forget(args: argparse.Namespace) -> int:
    """Run one edit from parsed arguments; print what it removed and, when features are at hand, its effect."""
    start = time.perf_counter()
    mask = check_forget_args(args)
    grid, pretrained = paradigms.grid_for(args.dataset), _resolve(args.pretrained)
    model, _, tokenizer = load_clip(args.model, pretrained)
    note = _no_features_note(args.model, args.dataset)
    try:
        test = eval_features(args.model, pretrained, args.dataset, model)
    except ValueError as e:  # a cached feature set of another model, or a damaged one: the edit goes on unmeasured
        test, note = None, f"note: cached features not used, so accuracy is not measured: {' '.join(str(e).split())}"
    classifier = prompts.class_embeddings(model, tokenizer, grid) if test is not None or args.method == "logit" else None
    from .evaluate import scores

    before = scores(model, test, classifier, mask) if test is not None else None
    text_dirs = prompts.text_directions(model, tokenizer, grid, progress=True)
    protos = None
    if args.mode == "multimodal":
        cfg = prototypes.SynthesisConfig(n=args.prototypes, steps=args.steps, seed=args.seed)
        cells = mask if args.prototype_cells == "forget" else None  # forget cells only: minutes, not a day
        protos = prototypes.grid_prototypes(model, text_dirs, grid, cfg, cells=cells)
    use = protos if args.mode == "multimodal" else None
    extra = {"classifier": classifier} if args.method == "logit" else {}
    with warnings.catch_warnings(record=True) as caught:  # printed below as one 'warning:' line each
        warnings.simplefilter("always")
        edited = edit.unlearn(model, grid, mask, text_dirs, protos, mode=args.mode, method=args.method,
                              inplace=True, **knobs(args), **extra)
    record = edited.minclip_records[-1]
    if protos is not None:
        record["prototype_cells"] = args.prototype_cells
    rho = record.get("rho") if record.get("rho") is not None else (args.rho if args.rho != "auto" else None)
    share = _geometry("forgettability")
    share = share(text_dirs, mask, prototypes=use, rho=rho) if share and rho and args.method == "hard" else None
    if pretrained is not None and Path(pretrained).is_file():
        from .datasets import checkpoint_sha256

        record["source"]["sha256"] = checkpoint_sha256(pretrained)
    after = scores(edited, test, classifier, mask) if test is not None else None
    try:
        ckpt, rec = edit.save_edited(edited, args.out, overwrite=args.overwrite)
    except OSError as e:
        raise UsageError(f"cannot write {args.out}: {e.strerror or e}; nothing was written") from e
    cells = record["forgotten"]
    print(f"forgot {len(cells)} cell(s) of {args.dataset}: "
          + ", ".join(f"{c}/{m}" for c, m in cells[:8]) + (" ..." if len(cells) > 8 else ""))
    settings = record.get("settings") or {k: record.get(k) for k in ("alpha", "rho", "lam", "mu")}
    print(f"mode={args.mode} method={args.method} "
          + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items() if v is not None)
          + (" (rho chosen by auto)" if record.get("rho_auto") else "") + f" rank removed={record['rank_removed']}")
    print(f"norm kept by the edit: forget directions {record['forget_norm_kept']:.3f}, "
          f"retain directions {record['retain_norm_kept']:.3f}")
    if share is not None:
        print(f"forgettability: {share:.3f} (the share of the forget directions' norm outside the protected span)")
    if test is not None:
        print(score_table(before, after, test.meta.get("data", args.dataset)))
    else:
        print(note)
    for line in warning_lines(share, record, before, after, [str(w.message) for w in caught]):
        print(f"warning: {line}")
    print(f"wrote {ckpt} and {rec} in {time.perf_counter() - start:.1f} s")
    return 0


def read_records(checkpoint: str | os.PathLike) -> list[dict]:
    """The records saved beside an edited checkpoint; a missing or unreadable one raises UsageError."""
    rec = edit.record_path(checkpoint)
    if not Path(checkpoint).exists() and not rec.exists():
        raise UsageError(f"no such file: {checkpoint}")
    if not rec.is_file():
        raise UsageError(f"{checkpoint} has no record ({rec.name} is missing): is it a checkpoint written by forget?")
    try:
        records = json.loads(rec.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{rec} is not a valid record (not JSON: {e})") from e
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise UsageError(f"{rec} is not a record written by forget (expected a list of edits)")
    return records


def describe(records: list[dict], checkpoint) -> str:
    """The edit records of a checkpoint as a readable summary."""
    lines = [f"{checkpoint}: {len(records)} edit(s)"]
    for k, r in enumerate(records, 1):
        src = r.get("source", {})
        cells, shape = r.get("forgotten", []), (len(r.get("classes", [])), len(r.get("domains", [])))
        lines += [
            f"edit {k}: {r.get('dataset')}, made {r.get('created', '?')} by minclip_unlearn {r.get('minclip_unlearn', '?')}",
            f"  model: {src.get('model', '?')} ({src.get('pretrained') or 'random init'})",
            f"  forgot {len(cells)} of {shape[0] * shape[1]} cells: "
            + ", ".join(f"{c}/{m}" for c, m in cells[:12]) + (" ..." if len(cells) > 12 else ""),
            f"  mode {r.get('mode')}, method {r.get('method')}: "
            + ", ".join(f"{k} {v}" for k, v in (r.get("settings") or {k: r.get(k) for k in ("alpha", "rho", "lam", "mu")}
                                                ).items() if v is not None)
            + (" (rho chosen by auto)" if r.get("rho_auto") else "")
            + f"; {r.get('n_prototypes', 0)} prototype(s) per "
            + ("forget cell" if r.get("prototype_cells") == "forget" else "cell"),
        ]
        if "forget_norm_kept" in r:
            lines.append(f"  rank removed {r.get('rank_removed')}; norm kept: forget directions "
                         f"{r['forget_norm_kept']:.3f}, retain directions {r.get('retain_norm_kept', float('nan')):.3f}")
    return "\n".join(lines)


def info(args: argparse.Namespace) -> int:
    """Print what an edited checkpoint forgot, and how (--json: the raw record)."""
    records = read_records(args.checkpoint)
    print(json.dumps(records, indent=2) if args.json else describe(records, args.checkpoint))
    return 0


def _original(src: dict):
    """The unedited model a record names, or (None, why) when it cannot be had (moved, changed, offline)."""
    name, pretrained = src.get("model"), src.get("pretrained")
    if name == TOY_NAME and pretrained == "toyworld":
        pretrained = None
    if pretrained is not None and Path(pretrained).is_file() and src.get("sha256"):
        from .datasets import checkpoint_sha256

        if checkpoint_sha256(pretrained) != src["sha256"]:
            return None, f"{pretrained} has changed since the edit"
    try:
        return load_clip(name, pretrained)[0], None
    except (ValueError, RuntimeError) as e:
        return None, str(e).split(";")[0]


def evaluate(args: argparse.Namespace) -> int:
    """Measure an edited checkpoint on ToyWorld or cached features: per-cell accuracy, forget/retain/off-target."""
    records = read_records(args.checkpoint)
    last = records[-1]
    src, dataset = last.get("source", {}), last.get("dataset")
    if dataset not in DATASETS or not src.get("model"):
        raise UsageError(f"the record of {args.checkpoint} names no dataset/model this command knows")
    grid = paradigms.grid_for(dataset)
    mask = paradigms.validate_mask(grid, torch.tensor(last["mask"]).bool())
    plot = None
    if args.plot is not None:
        plot = Path(args.plot or Path(args.checkpoint).with_suffix(".png"))
        if plot.suffix.lower() != ".png":
            raise UsageError(f"--plot {plot}: the heatmap is a PNG; use a name ending in .png")
        check_output(plot, args.overwrite, protect=(args.checkpoint, edit.record_path(args.checkpoint)))
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"no such file: {args.checkpoint}")
    pretrained = None if src["model"] == TOY_NAME and src.get("pretrained") == "toyworld" else src.get("pretrained")
    test = None if dataset in TOY_DATASETS else eval_features(src["model"], pretrained, dataset)
    if test is None and dataset not in TOY_DATASETS:  # found out before any model is loaded
        raise UsageError(_no_features_note(src["model"], dataset).removeprefix("note: "))
    edited, _, tokenizer = load_clip(src["model"], args.checkpoint)
    test = test if test is not None else eval_features(src["model"], pretrained, dataset, edited)
    from .evaluate import accuracy_matrix, scores

    classifier = prompts.class_embeddings(edited, tokenizer, grid)
    original, why = _original(src)
    if why:
        print(f"note: the unedited model is not available ({why}): showing the edited model only")
    after, acc_after = scores(edited, test, classifier, mask), accuracy_matrix(edited, test, classifier)
    before = scores(original, test, classifier, mask) if original is not None else None
    acc_before = accuracy_matrix(original, test, classifier) if original is not None else None
    print(describe(records[-1:], args.checkpoint).split("\n", 1)[1])
    print(score_table(before, after, test.meta.get("data", dataset)))
    print(accuracy_lines(acc_after, grid, mask))
    if plot is not None:
        from . import plots

        title = f"{args.checkpoint}: forgot {len(last['forgotten'])} cell(s)"
        if acc_before is not None:
            fig = plots.before_after(acc_before, acc_after, grid, mask, test.meta.get("name", dataset), title)
        else:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3.2 if len(grid.classes) <= 10 else 8), constrained_layout=True)
            plots.heatmap(acc_after, grid, ax, f"{title} (after)\n{test.meta.get('name', dataset)}", mask)
        atomic_write(plot, lambda f: fig.savefig(f, format="png", dpi=120))
        print(f"wrote {plot}")
    return 0


def accuracy_lines(acc, grid: paradigms.ConceptGrid, mask: torch.Tensor, max_rows: int = 20) -> str:
    """(C, M) accuracy after the edit as a table; forgotten cells are marked with *."""
    width = max(8, *(len(m) for m in grid.domains))
    head = f"accuracy per cell after the edit (* forgotten):\n  {'':12s}" + "".join(f"{m:>{width + 1}s}" for m in grid.domains)
    rows = [f"  {c[:12]:12s}" + "".join(f"{_fmt(acc[i, j]).strip() + ('*' if mask[i, j] else ' '):>{width + 1}s}"
                                       for j in range(len(grid.domains)))
            for i, c in enumerate(grid.classes[:max_rows])]
    more = [f"  ... and {len(grid.classes) - max_rows} more classes"] if len(grid.classes) > max_rows else []
    return "\n".join([head, *rows, *more])


# ---------------------------------------------------------------- parsing
def parser() -> argparse.ArgumentParser:
    """The argument parser of all three commands."""
    p = argparse.ArgumentParser(prog="python -m minclip_unlearn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forget", help="edit a CLIP so that it forgets classes and/or domains")
    f.add_argument("--model", required=True, help="open_clip architecture (e.g. ViT-B-32) or 'toy'")
    f.add_argument("--pretrained", default=None, help="pretrained tag (e.g. openai) or a local checkpoint path")
    f.add_argument("--dataset", required=True, choices=DATASETS, help="whose classes and domains (toy: toyworld)")
    f.add_argument("--classes", nargs="+", help="classes to forget (all domains unless --domains)")
    f.add_argument("--domains", nargs="+", help="domains to forget in (all classes unless --classes)")
    f.add_argument("--mode", default="multimodal", choices=edit.MODES)
    f.add_argument("--method", default="hard", choices=edit.METHODS)
    f.add_argument("--alpha", type=float, help="strength in [0, 1] (hard, logit; default 1)")
    f.add_argument("--rho", type=rho_value,
                   help="retain energy kept protected, in (0, 1], or 'auto' (hard: default 0.99; logit: 1)")
    f.add_argument("--lam", type=float, help="forget weight >= 0 (soft: default 100; logit: soft targets, > 0)")
    f.add_argument("--mu", type=float, help="retain weight >= 0 (soft: default 10; logit: soft held logits)")
    f.add_argument("--prototypes", type=int, default=2, help="visual prototypes per cell, >= 1 (multimodal)")
    f.add_argument("--prototype-cells", default="all", choices=("all", "forget"),
                   help="synthesise prototypes for every cell (default, the book's) or for the forget cells only "
                        "(the retained cells then enter R by their text directions: at DomainNet scale on a CPU, "
                        "minutes instead of a day; see benchmarks/retain_prototypes.py)")
    f.add_argument("--steps", type=int, default=100, help="synthesis steps per prototype batch, >= 1")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", required=True, help="path of the edited checkpoint (its record goes beside it as .json)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    f.set_defaults(run=forget)
    e = sub.add_parser("evaluate", help="measure an edited checkpoint (ToyWorld, or cached real features)")
    e.add_argument("checkpoint", help="a checkpoint written by forget (its .json record beside it)")
    e.add_argument("--plot", nargs="?", const="", default=None, metavar="PNG",
                   help="also write before/after heatmaps (default name: the checkpoint's, with .png)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    e.set_defaults(run=evaluate)
    i = sub.add_parser("info", help="show what an edited checkpoint forgot, and how")
    i.add_argument("checkpoint")
    i.add_argument("--json", action="store_true", help="print the raw record")
    i.set_defaults(run=info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run a command; bad input exits with status 2 and one clear line."""
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:  # FileExistsError and FileNotFoundError are OSErrors
        message = str(e) if not isinstance(e, OSError) or not e.strerror or not e.filename else \
            f"{e.filename}: {e.strerror}"
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
