"""Property: over combinations of CLI arguments, good and bad, the command line never prints a traceback, never
loses or overwrites a file it was not told to replace, and exits with 0 or 2 (issue 16).

Runs in process on a random-init ToyWorld checkpoint; most examples fail validation before any model work, the
others are a text-mode or 1-prototype edit of a tiny model (about a second each)."""
import contextlib
import hashlib
import io
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import minclip_unlearn.__main__ as cli
from minclip_unlearn.paradigms import TOYWORLD_CLASSES, TOYWORLD_DOMAINS

KEEP = b"a file of the user's: never to be lost"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with a good toy checkpoint, a garbage one, an existing user file and a plain file (not a folder)."""
    import open_clip

    from minclip_unlearn.toyworld import TOY_CLIP_NAME

    root = tmp_path_factory.mktemp("props")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(TOY_CLIP_NAME).state_dict(), root / "toy.pt")
    (root / "garbage.pt").write_bytes(b"\x80\x04garbage")
    (root / "existing.pt").write_bytes(KEEP)
    (root / "afile").write_bytes(KEEP)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINCLIP_CACHE", str(root / "cache"))
        assert cli.main(["forget", "--model", "toy", "--pretrained", str(root / "toy.pt"), "--dataset", "toyworld",
                         "--classes", "star", "--mode", "text", "--out", str(root / "edited.pt")]) == 0
    return root


GOOD_NUMBERS = {"--alpha": ["0", "0.5", "1"], "--rho": ["0.8", "1"], "--lam": ["0", "100"], "--mu": ["0", "10"]}
BAD_NUMBERS = ["-1", "1.5", "nan", "inf", "abc", ""]
MISTAKES = ["none"] * 4 + ["model", "dataset", "pretrained", "classes", "domains", "number", "prototypes", "steps",
                           "mode", "out", "nothing"]


@st.composite
def forget_argv(draw):
    """Mostly-valid forget arguments with at most one mistake (or none), so both outcomes are exercised."""
    mistake = draw(st.sampled_from(MISTAKES))
    model = draw(st.sampled_from(["ViT-B-33", "toy-vit"])) if mistake == "model" else "toy"
    dataset = draw(st.sampled_from(["pacs", "domainnet", "nope"])) if mistake == "dataset" else "toyworld"
    pretrained = draw(st.sampled_from(["garbage.pt", "missing.pt", "afile", "."])) if mistake == "pretrained" \
        else "toy.pt"
    out = draw(st.sampled_from(["x.json", "afile/new.pt", ".", "toy.pt", "new.JSON"])) if mistake == "out" \
        else draw(st.sampled_from(["new.pt", "sub/dir/new.pt", "existing.pt", "edited.pt"]))
    argv = ["forget", "--model", model, "--dataset", dataset, "--pretrained", pretrained, "--out", out]
    classes = draw(st.lists(st.sampled_from(TOYWORLD_CLASSES[:3]), min_size=1, max_size=2, unique=True))
    chosen = draw(st.lists(st.sampled_from(TOYWORLD_DOMAINS[:3]), min_size=1, max_size=2, unique=True))
    which = draw(st.sampled_from(["classes", "domains", "both"]))
    if mistake == "classes":
        classes = [*classes, draw(st.sampled_from(["dog", "Star", "star star"]))]
    if mistake == "domains":
        chosen, which = [draw(st.sampled_from(["clipart", "Photo"]))], "both"
    if mistake != "nothing":
        argv += ["--classes", *classes] * (which != "domains") + ["--domains", *chosen] * (which != "classes")
    for flag, good in GOOD_NUMBERS.items():
        if draw(st.booleans()):
            argv += [flag, draw(st.sampled_from(good))]
    if mistake == "number":
        argv += [draw(st.sampled_from(list(GOOD_NUMBERS))), draw(st.sampled_from(BAD_NUMBERS))]
    argv += ["--prototypes", draw(st.sampled_from(["0", "-1"])) if mistake == "prototypes" else "1"]
    argv += ["--steps", draw(st.sampled_from(["0", "-5", "x"])) if mistake == "steps" else "1"]
    argv += ["--mode", "bogus" if mistake == "mode" else draw(st.sampled_from(["text", "text", "multimodal"]))]
    argv += ["--method", draw(st.sampled_from(["hard", "hard", "soft"]))]
    if draw(st.booleans()):
        argv += ["--overwrite"]
    return argv


other_argv = st.one_of(
    st.tuples(st.just("info"), st.sampled_from(["edited.pt", "edited.json", "existing.pt", "missing.pt", "afile", "."]),
              st.sampled_from([[], ["--json"]])).map(lambda t: [t[0], t[1], *t[2]]),
    st.tuples(st.just("evaluate"), st.sampled_from(["edited.pt", "existing.pt", "missing.pt", "toy.pt"]),
              st.sampled_from([[], ["--plot"], ["--plot", "existing.pt"], ["--plot", "p.png"], ["--plot", "x.txt"],
                               ["--plot", "edited.pt"]]), st.sampled_from([[], ["--overwrite"]]))
    .map(lambda t: [t[0], t[1], *t[2], *t[3]]),
    st.lists(st.sampled_from(["forget", "info", "--bogus", "evaluate", "-h"]), max_size=2),
)


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


@settings(max_examples=45, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=st.one_of(forget_argv(), forget_argv(), other_argv))
def test_any_arguments_exit_0_or_2_without_traceback_or_lost_file(argv, world, monkeypatch):
    work = Path(tempfile.mkdtemp(dir=world))
    try:
        for name in ("toy.pt", "garbage.pt", "existing.pt", "afile", "edited.pt", "edited.json"):
            shutil.copy(world / name, work / name)
        before = digests(work)
        monkeypatch.chdir(work)
        monkeypatch.setenv("MINCLIP_CACHE", str(world / "cache"))
        monkeypatch.delenv("MINCLIP_FEATURES", raising=False)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(argv)
            except SystemExit as e:  # argparse: usage errors (2) and --help (0)
                rc = e.code
        event(f"rc={rc} {argv[0] if argv else ''}")
        assert rc in (0, 2), (argv, rc, err.getvalue())
        assert "Traceback" not in err.getvalue() + out.getvalue(), argv
        if rc == 2 and not err.getvalue().startswith("usage:"):
            assert err.getvalue().strip().replace("\r", "\n").splitlines()[-1].startswith("error: "), err.getvalue()
        after = digests(work)
        replaced = set()
        if rc == 0 and "--overwrite" in argv and argv[0] == "forget":  # told to replace --out and its record
            replaced = {argv[argv.index("--out") + 1], str(Path(argv[argv.index("--out") + 1]).with_suffix(".json"))}
        if rc == 0 and "--overwrite" in argv and argv[0] == "evaluate" and "--plot" in argv:
            replaced = {"p.png"}
        for name, digest in before.items():
            assert name in after, (argv, f"{name} was lost")
            assert after[name] == digest or name in replaced, (argv, f"{name} was overwritten")
        assert (work / "toy.pt").read_bytes() == (world / "toy.pt").read_bytes()  # the input is never touched
        if rc == 2 and argv[:1] == ["forget"]:
            assert set(after) == set(before), (argv, "a failed forget wrote files")
    finally:
        shutil.rmtree(work, ignore_errors=True)
