"""A static look at a notebook's code: does it use the package's reference implementation of a part?

It flags, in code cells: a name imported from ``minclip_unlearn`` that a part forbids; an attribute of a
``minclip_unlearn`` module with a forbidden name (``nullspace.hard_projector``); a forbidden name used but
not defined by the notebook; a string equal to a forbidden name (``getattr(m, "hard_projector")``). It does
not catch code that builds the name at run time or retypes the reference code: a reader does.
"""
from __future__ import annotations

import ast
import re

PACKAGE = "minclip_unlearn"


def _code(source: str) -> str:
    """A cell's source without IPython magics and shell lines (they are not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _defined(tree: ast.AST) -> set[str]:
    """Names the code defines itself: functions, classes, assignments."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
    return out


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def uses(sources: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden names the code cells use -> ["hard_projector (code cell 3)", ...], empty when none."""
    names, trees = set(forbidden), []
    for i, src in enumerate(sources):
        try:
            trees.append((i, ast.parse(_code(src))))
        except SyntaxError:
            trees.append((i, None))
    defined = set().union(*(_defined(t) for _, t in trees if t is not None))
    package_aliases = {PACKAGE}
    for _, tree in trees:
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                package_aliases |= {(a.asname or a.name).split(".")[0] for a in node.names
                                    if a.name.split(".")[0] == PACKAGE}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
                package_aliases |= {a.asname or a.name for a in node.names}
    hits: dict[str, int] = {}
    for i, tree in trees:
        if tree is None:  # not Python: fall back to the words
            for name in names:
                if re.search(rf"\b{re.escape(name)}\b", sources[i]):
                    hits.setdefault(name, i)
            continue
        for node in ast.walk(tree):
            found = set()
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
                found = {a.name for a in node.names} & names
            elif isinstance(node, ast.Attribute) and node.attr in names and _root(node) in package_aliases:
                found = {node.attr}
            elif isinstance(node, ast.Name) and node.id in names and node.id not in defined:
                found = {node.id}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names - defined:
                found = {node.value}
            for name in found:
                hits.setdefault(name, i)
    return [f"{name} (code cell {i})" for name, i in sorted(hits.items(), key=lambda kv: kv[1])]
