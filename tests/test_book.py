"""The book's sources: clean notebooks, a complete table of contents, resolvable citations and
glossary terms, the build settings the project relies on, and the browser check's parsing.

The build itself (``jupyter-book build . -W -n --keep-going``) and the browser check run in
.ci/run; nbval runs the notebooks (pytest's testpaths include book/).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SKIP_PARTS = {".ipynb_checkpoints", "_build"}


def notebooks() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.ipynb") if not SKIP_PARTS & set(p.parts))


def pages() -> list[Path]:
    found = sorted(p for p in BOOK.rglob("*.md") if not SKIP_PARTS & set(p.parts))
    return found + notebooks()


def markdown_source(path: Path) -> str:
    """The text a reader sees: a .md file, or the markdown cells of a notebook."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join(
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for cell in nb["cells"]
            if cell["cell_type"] == "markdown"
        )
    return path.read_text(encoding="utf-8")


def toc_files(node) -> list[str]:
    """Every `file:` of _toc.yml (root included), at any depth."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ------------------------------------------------------------------ notebooks and the toc
def test_notebooks_are_committed_without_outputs():
    dirty = []
    for path in notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            if cell.get("outputs"):
                dirty.append(f"{rel(path)} cell {i}: has outputs")
            if cell.get("execution_count") is not None:
                dirty.append(f"{rel(path)} cell {i}: has an execution count")
    assert not dirty, "clear the outputs (e.g. jupyter nbconvert --clear-output --inplace):\n" + "\n".join(dirty)


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    listed = {Path(f).with_suffix("").as_posix() for f in toc_files(toc)}
    missing = [rel(p) for p in notebooks() if rel(p.with_suffix("")) not in listed]
    assert not missing, f"add to _toc.yml: {missing}"


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc["format"] == "jb-book"
    assert toc["root"] == "book/intro"
    for part in toc["parts"]:
        assert part.get("caption") and part.get("chapters"), f"a part needs a caption and a chapter: {part}"
    absent = [
        f for f in toc_files(toc)
        if not any((ROOT / f).with_suffix(ext).exists() for ext in (".md", ".ipynb"))
        and not (ROOT / f).exists()
    ]
    assert not absent, f"_toc.yml names pages that do not exist: {absent}"


# ------------------------------------------------------------------ citations and terms
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")
TERM = re.compile(r"\{term\}`([^`]*)`")
BIB_ENTRY = re.compile(r"^\s*@(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)


def bib_keys() -> set[str]:
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    return {key for kind, key in BIB_ENTRY.findall(text) if kind.lower() not in {"comment", "string", "preamble"}}


def glossary_terms() -> set[str]:
    """The terms of every {glossary} block in book/glossary.md: its unindented lines."""
    text = (BOOK / "glossary.md").read_text(encoding="utf-8")
    terms = set()
    for block in re.findall(r"^(`{3,}|:{3,})\{glossary\}[^\n]*\n(.*?)^\1\s*$", text, re.M | re.S):
        for line in block[1].splitlines():
            if line.strip() and not line[0].isspace() and not line.startswith(":"):
                terms.add(" ".join(line.split()).lower())
    return terms


def term_target(text: str) -> str:
    """`{term}` text or `text <target>` -> the glossary term it points to, normalised."""
    m = re.search(r"<([^<>]+)>\s*$", text)
    return " ".join((m.group(1) if m else text).split()).lower()


def test_references_bib_has_the_core_entries():
    keys = bib_keys()
    required = {
        "mishra2025selective", "mishra2025erasing", "radford2021clip", "ilharco2021openclip", "li2017pacs",
        "peng2019domainnet", "ravfogel2020inlp", "belrose2023leace", "kravets2025zeroshot", "liang2022gap",
    }
    assert required <= keys, f"missing from references.bib: {sorted(required - keys)}"
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    assert "2512.14113" in text and "2512.14137" in text
    assert len(BIB_ENTRY.findall(text)) == len(keys), "a key is defined twice in references.bib"


def test_no_two_references_render_alike():
    """The author-year style shows first author and year: two entries sharing both need 2025a/2025b."""
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for entry in re.split(r"^\s*@", text, flags=re.M)[1:]:
        key = re.match(r"\w+\s*\{\s*([^,\s]+)", entry)
        author = re.search(r"\bauthor\s*=\s*\{\s*\{?([^,{}]+)", entry)
        year = re.search(r"\byear\s*=\s*\{?\s*(\w+)", entry)
        if not (key and author and year):
            continue
        label = (author.group(1).split()[-1].lower() if "," not in author.group(0) else author.group(1).strip().lower(), year.group(1))
        if label in seen:
            clashes.append(f"{seen[label]} and {key.group(1)}: {label}")
        seen[label] = key.group(1)
    assert not clashes, "these render identically; give the years a/b suffixes:\n" + "\n".join(clashes)


def test_every_cited_key_is_in_references_bib():
    keys = bib_keys()
    unknown = []
    for path in pages():
        for group in CITE.findall(markdown_source(path)):
            unknown += [f"{rel(path)}: {k.strip()}" for k in group.split(",") if k.strip() not in keys]
    assert not unknown, "cited but not in book/references.bib:\n" + "\n".join(unknown)


def test_every_term_is_in_the_glossary():
    terms = glossary_terms()
    assert len(terms) >= 26, f"the glossary looks truncated: {sorted(terms)}"
    unknown = []
    for path in pages():
        unknown += [f"{rel(path)}: {t}" for t in TERM.findall(markdown_source(path)) if term_target(t) not in terms]
    assert not unknown, "{term} with no entry in book/glossary.md:\n" + "\n".join(unknown)


def test_glossary_holds_the_terms_the_chapters_use():
    expected = [
        "zero-shot classification", "prompt ensemble", "modality gap", "concept grid", "forget mask", "retain set",
        "visual projection", "nullspace", "orthogonal projector", "retain protection", "strength (alpha)",
        "energy threshold (rho)", "ccup", "visual prototype", "total variation", "global forgetting",
        "domain-specific forgetting", "complete-domain forgetting", "accuracy matrix", "forget accuracy",
        "retain accuracy", "off-target effect", "recovery probe", "leace", "inlp", "toyworld",
    ]
    assert not set(expected) - glossary_terms()


def test_bibliography_directive_appears_exactly_once():
    count = sum(len(re.findall(r"^(?:`{3,}|:{3,})\{bibliography\}", markdown_source(p), re.M)) for p in pages())
    assert count == 1, f"sphinxcontrib-bibtex needs exactly one {{bibliography}} directive, found {count}"


# ------------------------------------------------------------------ build settings
def test_config_executes_notebooks_and_fails_on_errors():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"]["allow_errors"] is False
    assert config["execute"]["timeout"] >= 300
    assert config["only_build_toc_files"] is True
    assert "sphinx_exercise" in config["sphinx"]["extra_extensions"]
    assert all((ROOT / f).exists() for f in config["bibtex_bibfiles"])
    for ext in ("dollarmath", "amsmath", "colon_fence", "deflist"):
        assert ext in config["parse"]["myst_enable_extensions"]
    excluded = set(config["exclude_patterns"])
    assert {"tests", "benchmarks", "data_scripts", ".github", "README.md", "_build"} <= excluded
    launch = config["launch_buttons"]
    assert launch["colab_url"] and launch["binderhub_url"]
    assert config["repository"]["url"].startswith("https://github.com/")


# ------------------------------------------------------------------ the browser check's parsing
def load_check_pages():
    spec = importlib.util.spec_from_file_location("check_pages", ROOT / "tools" / "check_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLEAN_PAGE = """<html><body><main>
<p>Prose may say that a function raises an Exception.</p>
<p>See <a href="https://arxiv.org/abs/2512.14113">the paper</a>, <a href="https://github.com/o/r/blob/main/METHOD.md">the spec</a>
and <a href="02_geometry.html">the next chapter</a>.</p>
<div class="cell docutils container">
 <div class="cell_input docutils container"><pre>md = "see {term}`nullspace`"  # role syntax inside code a reader types is fine</pre></div>
</div>
<img src="figure.png" alt="a figure that loaded">
<div class="cell docutils container">
 <div class="cell_input docutils container"><pre>print("Traceback (most recent call last) is what Python prints")</pre></div>
 <div class="cell_output docutils container">
  <div class="output stream highlight-myst-ansi notranslate"><pre>accuracy 0.93</pre></div>
  <img src="../_images/heatmap.png" alt="output figure">
 </div>
</div>
</main></body></html>"""

BROKEN_PAGE = """<html><body><main>
<img src="missing.png" data-check-broken="http://127.0.0.1:8000/book/missing.png">
<div class="cell docutils container">
 <div class="cell_input docutils container"><pre>1/0</pre></div>
 <div class="cell_output docutils container">
  <div class="output traceback highlight-ipythontb notranslate"><pre>ZeroDivisionError                         Traceback (most recent call last)
Cell In[1], line 1
ZeroDivisionError: division by zero</pre></div>
 </div>
</div>
<div class="cell docutils container">
 <div class="cell_output docutils container">
  <div class="output stderr highlight-myst-ansi notranslate"><pre>RuntimeError: the cache is corrupt</pre></div>
 </div>
</div>
<div class="cell docutils container">
 <div class="cell_output docutils container">
  <div class="output text_plain highlight-myst-ansi notranslate"><pre>Exception: something went wrong</pre></div>
 </div>
</div>
<p>The spec, <a class="reference external" href="http://METHOD.md">METHOD.md</a> section 5.</p>
<p>Chapters link here with <code class="docutils literal notranslate"><span class="pre">{term}`modality gap`</span></code>.</p>
<div class="cell docutils container">
 <div class="cell_output docutils container">
  <div class="output stderr highlight-myst-ansi notranslate"><pre>UserWarning-free text: 100%|##########| 7/7 [00:01&lt;00:00]</pre></div>
 </div>
</div>
<div class="system-message"><p class="system-message-title">System Message: ERROR/3</p><p>Unknown directive type.</p></div>
</main></body></html>"""


def test_browser_check_passes_a_clean_page():
    assert load_check_pages().find_problems(CLEAN_PAGE) == []


def test_browser_check_catches_every_kind_of_error():
    problems = load_check_pages().find_problems(BROKEN_PAGE)
    text = "\n".join(problems)
    assert "broken image: http://127.0.0.1:8000/book/missing.png" in text
    assert "error output of a cell: ZeroDivisionError" in text
    assert "traceback text on the page" in text
    assert "stderr reports an error: RuntimeError: the cache is corrupt" in text
    assert "cell output shows an exception: Exception: something went wrong" in text
    assert "Sphinx/docutils error box" in text and "Unknown directive type" in text
    assert "a file name rendered as a web link: http://METHOD.md" in text
    assert "raw MyST role syntax on the page: {term}`modality gap`" in text
    assert "a stderr box (a warning or a progress bar) in a cell output: UserWarning-free text: 100%" in text


def test_browser_check_flags_each_new_kind_alone():
    """Each of the three checks fires on its own, and a near miss does not."""
    check = load_check_pages().find_problems
    wrap = "<html><body><main>{}</main></body></html>".format
    assert check(wrap('<a href="https://setup.py">x</a>')) == ["a file name rendered as a web link: https://setup.py"]
    assert check(wrap('<a href="https://docs.python.org/3/index.html">x</a>')) == []
    assert check(wrap('<a href="https://example.org/notes.md">x</a>')) == []
    assert check(wrap("<p>as {cite:t}`mishra2025selective` show</p>")) == [
        "raw MyST role syntax on the page: as {cite:t}`mishra2025selective` show"
    ]
    assert check(wrap("<p>a {glue:text}`rho:.2f` value</p>"))
    assert check(wrap("<p>a set {term} of braces, no backtick</p>")) == []
    stderr = '<div class="cell_output"><div class="output stderr"><pre>warnings.warn(x)</pre></div></div>'
    assert len(check(wrap(stderr))) == 1
    stdout = '<div class="cell_output"><div class="output stream"><pre>warnings.warn(x)</pre></div></div>'
    assert check(wrap(stdout)) == []


def test_browser_check_page_list_and_screenshot_choice(tmp_path):
    check = load_check_pages()
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_sources" / "book").mkdir(parents=True)
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    for name in ("book/intro.html", "book/ch1.html", "search.html", "genindex.html", "_static/x.html"):
        (tmp_path / name).write_text("<html><body>page</body></html>")
    assert check.book_pages(tmp_path) == [Path("book/ch1.html"), Path("book/intro.html")]
    pages = check.book_pages(tmp_path)
    assert check.chapter_for_screenshot(tmp_path, pages) == Path("book/intro.html")
    (tmp_path / "_sources" / "book" / "ch1.ipynb").write_text("{}")
    assert check.chapter_for_screenshot(tmp_path, pages) == Path("book/ch1.html")


# ------------------------------------------------------------------ numbers in prose come from outputs
def chapters() -> list[Path]:
    """The numbered chapter notebooks, book/NN_*.ipynb."""
    return [p for p in notebooks() if p.parent == BOOK and re.match(r"\d\d_", p.name)]


FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(\S*)")


def without_code_blocks(text: str) -> str:
    """Markdown without the lines of fenced code blocks; directives ({exercise}...) keep their body."""
    kept, stack = [], []  # stack: (fence, is_code) of the open fences
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and stack and m.group(1)[0] == stack[-1][0][0] and len(m.group(1)) >= len(stack[-1][0]) and not m.group(2):
            stack.pop()
            continue
        if m and not (stack and stack[-1][1]):
            stack.append((m.group(1), not m.group(2).startswith("{")))
            continue
        if not (stack and stack[-1][1]):
            kept.append(line)
    return "\n".join(kept)


# What prose may strip before its numbers are read: code, glued values, link targets, labels.
NOT_PROSE = [
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),  # a glued value: computed by the chapter
    re.compile(r"``.*?``|`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)\s]*\)|https?://\S+"),  # link targets
    re.compile(r"^:\w+:.*$", re.M),  # directive options (:label:, :class:)
    re.compile(r"<!--.*?-->", re.S),
]
# A figure a run measures: a decimal, a percentage, or a count hedged with "about".
FIGURE = re.compile(
    r"(?<![\w.\\^_{])(?:\d*\.\d+(?:\s*%)?|\d+\s*%|(?:about|around|roughly|approximately|nearly)\s+\d+(?:\.\d+)?)(?!\w|\.\d)"
)
# Constants prose may state by hand, each with its reason. A pattern removes the matched text
# before figures are read, so a measured number next to a constant is still caught.
CONSTANTS = [
    (r"\\(?:alpha|beta|gamma|lambda|mu|rho|tau|kappa)\s*=\s*\d*\.?\d+", "a setting written as math, e.g. $\\rho = 0.99$"),
    (r"\\\{\s*\d*\.?\d+(?:\s*,\s*\d*\.?\d+)*\s*\\\}", "a grid of candidate settings, $\\{0.99, 0.95, ...\\}$"),
    (r"default(?:\s+\w+){0,3}\s+0\.99|0\.99\s+default", "the package default rho, 0.99"),
    (r"99\s*%\s+of\s+(?:the\s+)?(?:the\s+)?(?:retain\s+directions'\s+|squared\s+singular-value\s+|their\s+)?energy", "what rho = 0.99 means"),
    (r"1/\d+\s*\\approx\s*0\.\d+", "chance written as a fraction"),
    (r"chance\s*\(\s*50\s*%\s*\)", "chance for a two-class reader"),
    (r"0\s*%\s*(?:forget accuracy\s*)?(?:by construction|within its label set)|the 0\s*% describes",
     "prompt removal, by construction"),
    (r"\br\(0\.\d+\)", "the rank a setting of rho keeps, r(0.99)"),
    (r"\d+\s*%\s+instead of\s+\d+\s*%\s+of the retain energy", "1 - rho for two settings of rho"),
    (r"probe\s+forget\s+accuracy\s+of\s+95\s*%|a 95\s*% probe", "a hypothetical reading in an exercise"),
    (r"0\.2\s*[–-]\s*0\.35", "the published cosine of matching pairs in pretrained CLIP (cited)"),
    (r"70\s*[–-]\s*100\s*%", "a synthesis setting (crop size)"),
    (r"learning rate\s+0\.\d+|\\beta\s*=\s*0\.05", "a synthesis setting"),
    (r"\\cos\(f,\s*r\)\s*=\s*0\.6|60\s*%\s+of\s+\$f\$|80\s*%\s+of its length", "chapter 2's constructed 3-d example"),
    (r"about\s+(?:150|400)\s+M\s+parameters", "ViT-B/32's published size"),
    (r"about\s+\d+\s*(?:[–-]\s*\d+\s*)?minutes", "a reading-time estimate"),
]


def prose_figures(text: str) -> list[str]:
    """The measured-looking numbers of a markdown text that are neither glued nor constants."""
    text = without_code_blocks(text)
    for pattern in NOT_PROSE:
        text = pattern.sub(" ", text)
    for pattern, _reason in CONSTANTS:
        text = re.sub(pattern, " ", text, flags=re.I)
    return [" ".join(m.group(0).split()) for m in FIGURE.finditer(text)]


def test_prose_figures_catch_measured_numbers_and_pass_constants():
    assert prose_figures("forget accuracy drops to 0.31, about 12 points, 28 % of it") == ["0.31", "about 12", "28 %"]
    assert prose_figures("the rule picks {glue:text}`rho:.2f` and keeps `rho=0.8` in code") == []
    assert prose_figures("the default $\\rho = 0.99$ keeps 99% of their energy; chance is $1/7\\approx 0.14$") == []
    assert prose_figures("~~~python\nedit(rho=0.95)\n~~~\nthen 0.95 of it") == ["0.95"]
    assert prose_figures("````{solution} ex\n```python\nx = 0.5\n```\nabout 40 % of it\n````") == ["about 40"]
    assert prose_figures("```{exercise}\nTry 0.25.\n```\n\n```{solution}\nIt gives 0.5.\n```") == ["0.25", "0.5"]
    assert prose_figures("7 classes, 4 domains, $d = 512$, 345 x 6 cells, chapter 5, 2025") == []
    assert prose_figures("the soft form ($\\lambda = 10$) loses 3.5 %") == ["3.5 %"]
    assert prose_figures("It ends at 0.42. Then 12 %.") == ["0.42", "12 %"]


def test_chapter_prose_quotes_no_figure_by_hand():
    """Every number a chapter's markdown quotes from a run comes from that run, through glue."""
    found = []
    for path in chapters():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                found += [f"{rel(path)} cell {i}: {f}" for f in prose_figures(source)]
    assert not found, (
        "glue these from an output (from myst_nb import glue; glue('name', value, display=False); "
        "{glue:text}`name:.2f`), or add a constant to CONSTANTS with its reason:\n" + "\n".join(found)
    )


# ------------------------------------------------------------------ the Colab install cell
COLAB_CELL = """\
# On Colab, or wherever the package is missing, install it; elsewhere this does nothing.
import importlib
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("minclip_unlearn") is None:
    repo = "git+https://github.com/minclip-unlearn/minclip_unlearn"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", repo], check=True)
    importlib.invalidate_caches()"""


def test_every_chapter_opens_with_the_hidden_install_cell():
    wrong = []
    for path in chapters():
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first = next(c for c in cells if c["cell_type"] == "code")
        source = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
        if source != COLAB_CELL or "remove-cell" not in first.get("metadata", {}).get("tags", []):
            wrong.append(rel(path))
        if cells[0] is not first:
            wrong.append(f"{rel(path)}: the install cell must be the notebook's first cell")
    assert not wrong, "the first cell must be tests/test_book.py's COLAB_CELL, tagged remove-cell:\n" + "\n".join(wrong)


def run_install_cell(monkeypatch, importable: bool) -> list[list[str]]:
    """Execute COLAB_CELL with pip replaced by a recorder; returns the commands it would run."""
    import subprocess

    calls = []
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: (real_find_spec(name, *a) if importable else None) if name == "minclip_unlearn" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    exec(compile(COLAB_CELL, "colab_cell", "exec"), {})
    return calls


def test_install_cell_does_nothing_where_the_package_is_importable(monkeypatch):
    assert importlib.util.find_spec("minclip_unlearn") is not None
    assert run_install_cell(monkeypatch, importable=True) == []


def test_install_cell_installs_the_repository_where_the_package_is_missing(monkeypatch):
    import sys

    calls = run_install_cell(monkeypatch, importable=False)
    assert len(calls) == 1
    cmd, kwargs = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert cmd[-1] == "git+" + yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert kwargs == {"check": True}


# ------------------------------------------------------------------ Binder
def test_binder_installs_the_same_environment_and_then_the_package():
    """repo2docker installs binder/environment.yml before the repository is copied, so `-e .`
    must not be there; binder/postBuild installs the package afterwards."""
    def pip_list(path: Path) -> list[str]:
        env = yaml.safe_load(path.read_text(encoding="utf-8"))
        return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))

    root, binder = pip_list(ROOT / "environment.yml"), pip_list(ROOT / "binder" / "environment.yml")
    assert [r for r in root if not r.startswith("-e")] == [r for r in binder if not r.startswith("--")]
    assert not any(r.startswith("-e") for r in binder)
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text(encoding="utf-8"))
    assert any(re.fullmatch(r"python=3\.\d+", str(d)) for d in env["dependencies"]), "repo2docker needs an exact python"
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert re.search(r"^python -m pip install --no-deps -e \.$", post.read_text(encoding="utf-8"), re.M)


# ------------------------------------------------------------------ the book's figures (minclip_unlearn.plots)
def test_heatmap_row_has_one_colour_bar_and_class_names_once():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from minclip_unlearn import grid_for, plots

    grid = grid_for("pacs")
    acc = np.linspace(0, 1, 28).reshape(7, 4)
    mask = torch.zeros(7, 4, dtype=torch.bool)
    mask[0, 3] = True
    fig = plots.heatmap_row([("before", acc), ("after", acc), ("again", acc)], grid, mask, "src", "t")
    axes = fig.axes
    assert len(axes) == 4  # three panels and one colour bar
    labels = [[t.get_text() for t in ax.get_yticklabels()] for ax in axes[:3]]
    assert labels[0] == list(grid.classes) and labels[1] == [] and labels[2] == []
    assert fig.get_figwidth() <= 11  # readable at the page width once scaled
    plt.close(fig)


def test_method_bars_marks_missing_groups_and_draws_every_metric():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from minclip_unlearn import plots

    rows = [{"paradigm": p, "method": m, "forget": np.nan if (p, m) == ("b", "x") else 0.5, "retain": 0.9}
            for p in ("a", "b") for m in ("x", "y")]
    results = pd.DataFrame(rows).set_index(["paradigm", "method"])
    fig = plots.method_bars(results, {"a": 1, "b": 2}, ["x", "y"], ["x", "y"],
                            {"forget": "red", "retain": "green"}, 1 / 7, "src")
    panel_b = fig.axes[1]
    assert "n/a" in [t.get_text() for t in panel_b.texts]
    assert len(fig.axes[0].patches) == 4  # 2 methods x 2 metrics
    plt.close(fig)
