"""The teacher's kit on the command line.

    python -m minclip_unlearn.assignments release OUT [--solutions] [--no-readme]
    python -m minclip_unlearn.assignments grade SUBMISSIONS... [--out grades.csv] [--timeout 300]
                                                [--assignment ID] [--allow-errors]
    python -m minclip_unlearn.assignments list
"""
from __future__ import annotations

import argparse
import sys

from .grade import DEFAULT_TIMEOUT
from .registry import ASSIGNMENTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minclip_unlearn.assignments",
                                     description="Release and grade the minclip_unlearn assignments.")
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="write the student versions (starter notebooks, no solutions) and a README")
    rel.add_argument("out", help="folder to write into (created if missing)")
    rel.add_argument("--solutions", action="store_true", help="also write the reference solutions to OUT/solutions/ "
                     "(for instructors: do not hand these out)")
    rel.add_argument("--no-readme", action="store_true", help="write the notebooks only")

    gr = sub.add_parser("grade", help="run each submitted notebook in a fresh kernel and grade it")
    gr.add_argument("submissions", nargs="+", help="notebooks, or folders of them")
    gr.add_argument("--out", default="grades.csv", help="CSV to write (default: grades.csv)")
    gr.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help=f"seconds a whole notebook may run (default {DEFAULT_TIMEOUT})")
    gr.add_argument("--assignment", choices=sorted(ASSIGNMENTS), help="grade every submission as this assignment "
                    "(default: from the notebook's metadata, else its file name)")
    gr.add_argument("--allow-errors", action="store_true", help="keep running after a cell raises and grade what was "
                    "defined (default: a notebook that raises scores zero)")
    gr.add_argument("--quiet", action="store_true", help="no progress bar and no summary")

    sub.add_parser("list", help="the assignments: id, file, time, points")
    args = parser.parse_args(argv)

    if args.command == "release":
        from .release import release

        for path in release(args.out, solutions=args.solutions, with_readme=not args.no_readme):
            print(path)
        return 0
    if args.command == "grade":
        from .grade import expand, grade, summary

        missing = [s for s in args.submissions if not __import__("os").path.exists(s)]
        if missing:
            print(f"no such file or folder: {', '.join(missing)}", file=sys.stderr)
            return 2
        if not expand(args.submissions):
            print("no submissions found", file=sys.stderr)
            return 2
        rows = grade(args.submissions, out=args.out, timeout=args.timeout, assignment=args.assignment,
                     allow_errors=args.allow_errors, progress=not args.quiet)
        if not args.quiet:
            print(summary(rows))
            print(f"wrote {args.out} ({len(rows)} submissions)")
        return 0
    for a in ASSIGNMENTS.values():
        print(f"{a.id:<14} {a.filename:<22} ~{a.minutes} min  {a.max_points:g} points  {a.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
