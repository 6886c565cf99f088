"""The teacher's kit on the command line.

    python -m minclip_unlearn.assignments release OUT [--solutions] [--no-readme]
    python -m minclip_unlearn.assignments grade SUBMISSIONS... [--out grades.csv] [--timeout 300]
                [--assignment ID] [--allow-errors] [--course DIR] [--memory MB] [--seed N] [--fresh]
    python -m minclip_unlearn.assignments course-kit DIR
    python -m minclip_unlearn.assignments list
"""
from __future__ import annotations

import argparse
import os
import sys

from .grade import DEFAULT_TIMEOUT
from .registry import ASSIGNMENTS
from .sandbox import Limits


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minclip_unlearn.assignments",
                                     description="Release and grade the minclip_unlearn assignments.")
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="write the student versions (starter notebooks, no solutions) and a README")
    rel.add_argument("out", help="folder to write into (created if missing)")
    rel.add_argument("--solutions", action="store_true", help="also write the reference solutions to OUT/solutions/ "
                     "(for instructors: do not hand these out)")
    rel.add_argument("--no-readme", action="store_true", help="write the notebooks only")
    rel.add_argument("--course", metavar="DIR", help="take the solutions from a course folder (see course-kit)")

    gr = sub.add_parser("grade", help="run each submitted notebook alone and grade it")
    gr.add_argument("submissions", nargs="+", help="notebooks, or folders of them")
    gr.add_argument("--out", default="grades.csv", help="CSV to write, row by row (default: grades.csv); "
                    "an earlier run's rows for unchanged submissions are kept (resume)")
    gr.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT,
                    help=f"seconds a whole notebook may run (default {DEFAULT_TIMEOUT})")
    gr.add_argument("--assignment", choices=sorted(ASSIGNMENTS), help="grade every submission as this assignment "
                    "(default: from the notebook's metadata, else its file name)")
    gr.add_argument("--allow-errors", action="store_true", help="keep running after a cell raises and grade what was "
                    "defined (default: a notebook that raises scores zero)")
    gr.add_argument("--course", metavar="DIR", help="course mode: the reference checks come from DIR (see "
                    "course-kit), not from the package")
    gr.add_argument("--memory", type=_positive(int), default=Limits.memory_mb,
                    help=f"address space a submission may use, in MB (default {Limits.memory_mb})")
    gr.add_argument("--seed", type=int, help="seed of the fresh inputs (default: a new one each run)")
    gr.add_argument("--fresh", action="store_true", help="grade every submission again, even those in --out")
    gr.add_argument("--quiet", action="store_true", help="no progress bar and no summary")

    kit = sub.add_parser("course-kit", help="copy the reference checks and solutions out of the package into DIR "
                         "(keep DIR with the instructor; see book/instructors.md)")
    kit.add_argument("dir", help="an empty or new folder")

    sub.add_parser("list", help="the assignments: id, file, time, points")
    args = parser.parse_args(argv)

    if args.command == "release":
        return _release(args)
    if args.command == "grade":
        return _grade(args)
    if args.command == "course-kit":
        from .course import write_course_kit

        try:
            for path in write_course_kit(args.dir):
                print(path)
        except (FileExistsError, FileNotFoundError) as e:
            print(e, file=sys.stderr)
            return 2
        return 0
    for a in ASSIGNMENTS.values():
        print(f"{a.id:<14} {a.filename:<22} ~{a.minutes} min  {a.max_points:g} points  {a.title}")
    return 0


def _release(args) -> int:
    from .course import check_course_dir, use_course
    from .release import release

    if args.course and (why := check_course_dir(args.course)):
        print(why, file=sys.stderr)
        return 2
    use_course(args.course)
    try:
        for path in release(args.out, solutions=args.solutions, with_readme=not args.no_readme):
            print(path)
    finally:
        use_course(None)
    return 0


def _grade(args) -> int:
    """Check every argument before any grading, then grade."""
    from .course import check_course_dir, use_course
    from .grade import check_out, expand, grade, summary

    missing = [s for s in args.submissions if not os.path.exists(s)]
    problems = [f"no such file or folder: {', '.join(missing)}"] if missing else []
    problems += [why for why in (check_out(args.out), args.course and check_course_dir(args.course)) if why]
    if not problems and not expand(args.submissions, exclude=(__import__("pathlib").Path(args.out),)):
        problems.append("no submissions found")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    try:
        rows = grade(args.submissions, out=args.out, timeout=args.timeout, assignment=args.assignment,
                     allow_errors=args.allow_errors, progress=not args.quiet, seed=args.seed,
                     limits=Limits(memory_mb=args.memory, cpu_s=int(args.timeout) + 120), fresh=args.fresh,
                     course=args.course)
    finally:
        use_course(None)
    if not args.quiet:
        print(summary(rows))
        from .sandbox import isolation

        print(f"wrote {args.out} ({len(rows)} submissions); isolation: {isolation()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
