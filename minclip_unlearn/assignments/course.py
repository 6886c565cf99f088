"""Where the reference experiments come from: the package (practice mode) or an instructor's folder (course mode).

In course mode the grader is pointed at a folder that holds ``references.py`` and ``solutions/*.ipynb``
(written by ``python -m minclip_unlearn.assignments course-kit DIR``); the package students install can
then carry neither.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

_course_dir: Path | None = None
REFERENCES = "references.py"


def use_course(folder: str | Path | None) -> None:
    """Take references and solutions from folder from now on (None: back to the package)."""
    global _course_dir
    _course_dir = None if folder is None else Path(folder).resolve()
    sys.modules.pop("minclip_course_references", None)


def course_dir() -> Path | None:
    return _course_dir


def references() -> ModuleType | None:
    """The reference-experiment module: the course folder's references.py, else the package's, else None."""
    if _course_dir is not None:
        if "minclip_course_references" in sys.modules:
            return sys.modules["minclip_course_references"]
        spec = importlib.util.spec_from_file_location("minclip_course_references", _course_dir / REFERENCES)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module("minclip_unlearn.assignments.references")
    except ImportError:
        return None


def solutions_dir() -> Path:
    """The folder of the reference solutions: the course folder's solutions/, else the package's."""
    if _course_dir is not None:
        return _course_dir / "solutions"
    return Path(__file__).resolve().parent / "solutions"


def check_course_dir(folder: str | Path) -> str | None:
    """Why folder cannot serve as a course folder (one line), or None when it can."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"--course {folder}: not a folder (make one with: python -m minclip_unlearn.assignments course-kit DIR)"
    if not (folder / REFERENCES).is_file():
        return f"--course {folder}: no {REFERENCES} in it (make one with: python -m minclip_unlearn.assignments course-kit DIR)"
    return None


def write_course_kit(out: str | Path) -> list[Path]:
    """Copy the reference experiments and the solutions out of the package into out (never overwrites)."""
    out = Path(out)
    here = Path(__file__).resolve().parent
    sources = [(here / REFERENCES, out / REFERENCES)] + [(p, out / "solutions" / p.name)
                                                          for p in sorted((here / "solutions").glob("*.ipynb"))]
    clash = [str(dst) for _, dst in sources if dst.exists()]
    if clash:
        raise FileExistsError(f"course-kit: {clash[0]} exists already; choose an empty folder")
    for src, dst in sources:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst for _, dst in sources]
