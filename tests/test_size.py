"""The method core stays small enough to read in one sitting (~500 lines of code, no module over ~200)."""
import ast
import io
import tokenize
from pathlib import Path

CORE = ("prompts", "prototypes", "nullspace", "paradigms", "edit", "evaluate")
PACKAGE = Path(__file__).resolve().parents[1] / "minclip_unlearn"


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def test_core_is_about_500_lines_and_no_module_is_over_200():
    sizes = {name: code_lines(PACKAGE / f"{name}.py") for name in CORE}
    print(sizes, sum(sizes.values()))
    assert max(sizes.values()) <= 200, sizes
    assert sum(sizes.values()) <= 600, sizes


def test_counter_ignores_docstrings_comments_and_blanks(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""doc\nstring"""\n\n# comment\ndef f(x):\n    """one line."""\n    return (x +\n            1)\n')
    assert code_lines(f) == 3
