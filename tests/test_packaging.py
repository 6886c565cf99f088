"""The two ways to install agree, and CI runs exactly the README's commands."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(req: str) -> str:
    return req.strip().replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): _spec(r) for r in pip if not r.startswith("-e")}
    assert {_name(r): _spec(r) for r in wanted} == listed
    assert "-e ." in pip


def test_jupyter_book_is_pinned_below_2():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "jupyter-book>=1,<2" in deps


def readme_setup_commands() -> list[str]:
    """The first two commands of the README's first fenced block: install, then test."""
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")][:2]


def test_ci_runs_exactly_the_readme_commands():
    install, test = readme_setup_commands()
    assert install == 'pip install -e ".[test]"' and test == "python -m pytest"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)
    assert "export HF_HUB_OFFLINE=1" in ci


def test_readme_quick_start_runs_and_forgets(toy_clip, capsys):
    """The README's Python block, run as written, prints its scores: 'star' is forgotten, the rest kept."""
    from minclip_unlearn import scores

    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert "'forget'" in capsys.readouterr().out
    before = scores(ns["model"], ns["test"], ns["classifier"], ns["mask"])
    after = scores(ns["edited"], ns["test"], ns["classifier"], ns["mask"])
    assert before["forget"] > 0.5 and after["forget"] < 0.3 * before["forget"]
    assert after["retain"] > before["retain"] - 0.05
