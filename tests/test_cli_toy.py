"""The command line tells the truth (issue 16), in process on a random-init ToyWorld CLIP saved as a checkpoint:
every argument is checked before any model work, each failure is one line with exit status 2, forget prints
what the edit did to accuracy, evaluate and info read an edited checkpoint."""
import json

import pytest
import torch

import minclip_unlearn.__main__ as cli
from minclip_unlearn import edit


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory):
    """A random-init ToyWorld CLIP saved as a state_dict (no training)."""
    import open_clip

    from minclip_unlearn.toyworld import TOY_CLIP_NAME

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("toyckpt") / "toy-random.pt"
    torch.save(open_clip.create_model(TOY_CLIP_NAME).state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MINCLIP_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))  # prototypes, digests
    monkeypatch.delenv("MINCLIP_FEATURES", raising=False)


def run(*args) -> int:
    """main(args) -> exit status (argparse's SystemExit included)."""
    try:
        return cli.main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def forget_args(ckpt, out, *extra):
    return ["forget", "--model", "toy", "--pretrained", ckpt, "--dataset", "toyworld", "--out", out,
            "--prototypes", "1", "--steps", "2", *extra]


def one_error_line(err: str) -> str:
    """The one 'error:' line that ends stderr (progress bars before it are fine); no traceback."""
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def edited(toy_ckpt, tmp_path_factory):
    """One forget run (classes 'star'), shared by the tests that read its output."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("edited") / "edited.pt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MINCLIP_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))
            assert run(*forget_args(toy_ckpt, out, "--classes", "star")) == 0
    return out, buf.getvalue()


def test_forget_prints_before_and_after_accuracy_on_toyworld(edited):
    out, printed = edited
    assert "forgot 4 cell(s) of toyworld: star/photo" in printed
    assert "zero-shot accuracy on ToyWorld test split" in printed  # before: only 'forgot 4 cell(s)'
    for row in ("forget (the masked cells)", "retain (all other cells)", "other classes"):
        line = next(x for x in printed.splitlines() if row in x)
        assert line.count("%") == 2, line  # before and after
    assert "forgettability" in printed or "warning: the forget directions keep" in printed or \
        "norm kept" in printed
    assert out.is_file() and edit.record_path(out).is_file()


def test_forget_warns_when_the_edit_removes_almost_nothing(toy_ckpt, tmp_path, capsys, monkeypatch):
    record = {}

    def unlearn(model, *a, **k):  # an edit that keeps the forget directions whole
        edited = edit.apply_projector(model, torch.eye(model.visual.proj.shape[1]),
                                      {"forgotten": [["star", "photo"]], "rank_removed": 0, "forget_norm_kept": 0.983,
                                       "retain_norm_kept": 1.0, "source": {}}, inplace=True)
        record.update(edited.minclip_records[-1])
        return edited

    monkeypatch.setattr(cli.edit, "unlearn", unlearn)
    monkeypatch.setattr(cli, "_geometry", lambda name: {"forgettability": lambda *a, **k: 0.04}.get(name))
    assert run(*forget_args(toy_ckpt, tmp_path / "e.pt", "--classes", "star", "--mode", "text", "--rho", "0.9")) == 0
    out = capsys.readouterr().out
    assert "forgettability: 0.040" in out
    warning = next(x for x in out.splitlines() if x.startswith("warning:"))
    assert "removes almost nothing" in warning and "What a linear edit can forget" in warning
    monkeypatch.setattr(cli, "_geometry", lambda name: None)  # without geometry: read from the measured accuracy
    assert run(*forget_args(toy_ckpt, tmp_path / "f.pt", "--classes", "star", "--mode", "text")) == 0
    out = capsys.readouterr().out
    assert "warning: the edit forgot almost nothing: forget accuracy fell by 0.0 points" in out


def test_warning_lines_use_the_best_evidence_at_hand():
    record = {"forget_norm_kept": 0.983}
    assert "removes almost nothing" in cli.warning_lines(0.05, record, None, None, [])[0]
    assert cli.warning_lines(0.5, record, {"forget": 0.9}, {"forget": 0.1}, []) == []  # it did forget
    assert "fell by 5.0 points" in cli.warning_lines(0.5, record, {"forget": 0.9}, {"forget": 0.85}, [])[0]
    assert "keep 98.3% of their norm" in cli.warning_lines(None, record, None, None, [])[0]  # no features
    assert cli.warning_lines(None, {"forget_norm_kept": 0.2}, None, None, ["other\nthing"]) == ["other thing"]


def test_info_is_a_readable_summary_and_json_on_request(edited, capsys):
    out, _ = edited
    assert run("info", out) == 0
    text = capsys.readouterr().out
    assert "1 edit(s)" in text and "forgot 4 of 28 cells: star/photo, star/art_painting" in text
    assert "model: toy (" in text and not text.lstrip().startswith("[")
    assert run("info", out, "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["forgotten"][0] == ["star", "photo"]


def test_evaluate_prints_the_table_and_writes_a_heatmap(edited, tmp_path, capsys):
    out, _ = edited
    png = tmp_path / "heat.png"
    assert run("evaluate", out, "--plot", png) == 0
    text = capsys.readouterr().out
    assert "before" in text and "after" in text and "accuracy per cell after the edit" in text
    assert "star" in text and "*" in text  # forgotten cells marked
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png_bytes = png.read_bytes()
    assert run("evaluate", out, "--plot", png) == 2  # an existing plot is not overwritten
    assert "exists" in one_error_line(capsys.readouterr().err) and png.read_bytes() == png_bytes


def test_evaluate_needs_features_for_real_data(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "edited.pt"
    ckpt.write_bytes(b"never read")
    record = {"dataset": "pacs", "mask": [[1, 0, 0, 0]] + [[0] * 4] * 6, "forgotten": [["dog", "photo"]],
              "source": {"model": "ViT-B-32", "pretrained": "openai"}}
    edit.record_path(ckpt).write_text(json.dumps([record]))
    monkeypatch.setattr(cli, "load_clip", lambda *a, **k: pytest.fail("loaded a model before finding features"))
    assert run("evaluate", ckpt) == 2
    assert "no cached pacs features for ViT-B-32" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("bad", [
    ["--alpha", "-0.1"], ["--alpha", "1.5"], ["--alpha", "nan"], ["--rho", "0"], ["--rho", "1.01"], ["--rho", "inf"],
    ["--lam", "-1"], ["--mu", "nan"], ["--prototypes", "0"], ["--prototypes", "-1"], ["--steps", "0"],
    ["--seed", "-3"], ["--classes", "dog"], ["--domains", "clipart"], [],
])
def test_a_bad_argument_is_refused_before_any_model_work(bad, toy_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_clip", lambda *a, **k: pytest.fail("loaded a model before checking arguments"))
    args = forget_args(toy_ckpt, tmp_path / "e.pt", *bad)
    if "--classes" not in bad and "--domains" not in bad and bad:
        args += ["--classes", "star"]
    assert run(*args) == 2  # before: alpha and rho were checked after prototype synthesis (18 s here)
    line = one_error_line(capsys.readouterr().err)
    assert bad == [] and "name what to forget" in line or bad and bad[0].lstrip("-") in line or "unknown" in line
    assert list(tmp_path.iterdir()) == []


def test_the_toy_clip_with_real_datasets_is_refused(toy_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_clip", lambda *a, **k: pytest.fail("loaded a model"))
    for dataset, cls in (("pacs", "dog"), ("domainnet", "airplane")):
        args = ["forget", "--model", "toy", "--pretrained", toy_ckpt, "--dataset", dataset, "--classes", cls,
                "--out", tmp_path / "e.pt"]
        assert run(*args) == 2  # before: an edit for classes the model has never seen, silently
        assert "has never seen" in one_error_line(capsys.readouterr().err)


def test_out_that_would_be_its_own_record_is_refused(toy_ckpt, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert run(*forget_args(toy_ckpt, out, "--classes", "star")) == 2  # before: rc 0, checkpoint overwritten by record
    assert "cannot be a .json file" in one_error_line(capsys.readouterr().err) and not out.exists()


def test_out_that_is_the_input_checkpoint_is_refused_even_with_overwrite(toy_ckpt, tmp_path, capsys):
    before = toy_ckpt.read_bytes()
    assert run(*forget_args(toy_ckpt, toy_ckpt, "--classes", "star", "--overwrite")) == 2
    assert "is an input" in one_error_line(capsys.readouterr().err) and toy_ckpt.read_bytes() == before


def test_out_in_a_folder_that_cannot_be_written_is_refused_first(toy_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_clip", lambda *a, **k: pytest.fail("loaded a model"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run(*forget_args(toy_ckpt, blocker / "edited.pt", "--classes", "star")) == 2
    assert "not a writable folder" in one_error_line(capsys.readouterr().err)
    assert run(*forget_args(toy_ckpt, tmp_path, "--classes", "star")) == 2
    assert "is a folder" in one_error_line(capsys.readouterr().err)


def test_a_write_that_fails_after_the_edit_is_one_line(toy_ckpt, tmp_path, capsys, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.edit, "save_edited", full_disk)
    assert run(*forget_args(toy_ckpt, tmp_path / "e.pt", "--classes", "star", "--mode", "text")) == 2
    assert "cannot write" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("content, why", [
    (None, "no toy CLIP checkpoint"), (b"", "cannot be read"), (b"garbage" * 50, "cannot be read"),
    ("tiny", "does not fit architecture 'toy'"),
])
def test_a_missing_garbage_or_wrong_checkpoint_is_one_line(content, why, tmp_path, tiny_clip, capsys):
    ckpt = tmp_path / "toy.pt"
    if content == "tiny":
        torch.save(tiny_clip.state_dict(), ckpt)
    elif content is not None:
        ckpt.write_bytes(content)
    assert run(*forget_args(ckpt, tmp_path / "e.pt", "--classes", "star", "--mode", "text")) == 2
    assert why in one_error_line(capsys.readouterr().err)  # before: a raw traceback
    assert not (tmp_path / "e.pt").exists()


@pytest.mark.parametrize("make, why", [(None, "no such file"), (b"not json", "not a valid record"),
                                       (b'{"a": 1}', "not a record written by forget")])
def test_info_on_a_missing_or_foreign_file_is_one_line(make, why, tmp_path, capsys):
    ckpt = tmp_path / "edited.pt"
    if make is not None:
        ckpt.write_bytes(b"x")
        edit.record_path(ckpt).write_bytes(make)
    assert run("info", ckpt) == 2  # before: a FileNotFoundError traceback
    assert why in one_error_line(capsys.readouterr().err)


def test_ctrl_c_is_one_line(toy_ckpt, tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_clip", interrupted)
    assert run(*forget_args(toy_ckpt, tmp_path / "e.pt", "--classes", "star")) == 130
    err = capsys.readouterr().err
    assert err.strip() == cli.INTERRUPTED and not (tmp_path / "e.pt").exists()


def test_method_specific_checks_run_before_any_model_work(toy_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_clip", lambda *a, **k: pytest.fail("loaded a model"))
    if "logit" in edit.METHODS:  # the logit edit's soft weight must be > 0
        assert run(*forget_args(toy_ckpt, tmp_path / "e.pt", "--classes", "star", "--method", "logit",
                                "--lam", "0")) == 2
        assert "--method logit" in one_error_line(capsys.readouterr().err)


def test_rho_auto_is_chosen_by_the_edit_and_reported(toy_ckpt, tmp_path, capsys):
    assert run(*forget_args(toy_ckpt, tmp_path / "e.pt", "--classes", "star", "--mode", "text", "--rho", "auto")) == 0
    out = capsys.readouterr().out
    assert "(rho chosen by auto)" in out and "forgettability:" in out
    record = json.loads(edit.record_path(tmp_path / "e.pt").read_text())[-1]
    assert record["rho_auto"] and 0 < record["rho"] <= 1


def test_method_choices_come_from_edit_methods():
    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices["forget"]
    method = next(a for a in sub._actions if a.dest == "method")
    assert tuple(method.choices) == tuple(edit.METHODS)
