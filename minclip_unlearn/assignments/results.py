"""What a checker returns: one Check per property (points, message) and a Result per part of an assignment."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

NOT_IMPLEMENTED = "not implemented yet"


@dataclass
class Check:
    """One graded property: passed or not, the points it earned, and feedback naming what was measured."""

    name: str            # short id, used as a column of grades.csv: e.g. "retain"
    title: str           # what it measures, e.g. "retain preservation  P Q_R = Q_R"
    max_points: float
    passed: bool = False
    message: str = ""

    @property
    def points(self) -> float:
        return self.max_points if self.passed else 0.0


@dataclass
class Result:
    """The checks of one part of an assignment (e.g. the projector), with per-check points and a total."""

    assignment: str      # assignment id, e.g. "projector"
    part: str            # part id, e.g. "projector" or "orth"
    checks: list[Check] = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # ungraded material for the instructor (e.g. a written answer)

    @property
    def total(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_total(self) -> float:
        return sum(c.max_points for c in self.checks)

    @property
    def points(self) -> dict[str, float]:
        """{"part.check": points} for every check."""
        return {f"{self.part}.{c.name}": c.points for c in self.checks}

    def report(self) -> str:
        """The text a student reads: one line per check, its points, and what to fix."""
        lines = [f"{self.part}: {_fmt(self.total)}/{_fmt(self.max_total)} points"]
        messages = {c.message for c in self.checks}
        if len(messages) == 1 and next(iter(messages)).startswith(NOT_IMPLEMENTED):  # nothing to measure yet
            lines[0] += f" — {next(iter(messages))}"
            return "\n".join(lines + [f"  [    ] {c.title} ({_pts(c.max_points)})" for c in self.checks])
        for c in self.checks:
            mark = "PASS" if c.passed else "FAIL"
            lines.append(f"  [{mark}] {c.title} ({_fmt(c.points)}/{_fmt(c.max_points)})")
            if c.message:
                lines += [f"         {line}" for line in c.message.splitlines()]
        return "\n".join(lines)

    def feedback(self) -> str:
        """One line per failed check, for grades.csv ("part: not implemented yet" when nothing ran)."""
        if self.checks and all(c.message.startswith(NOT_IMPLEMENTED) for c in self.checks):
            return f"{self.part}: {NOT_IMPLEMENTED}"
        return " | ".join(f"{self.part}.{c.name}: {' '.join(c.message.split()) if c.message else 'failed'}"
                          for c in self.checks if not c.passed)

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "part": self.part, "total": self.total, "max_total": self.max_total,
                "checks": [asdict(c) | {"points": c.points} for c in self.checks], "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        checks = [Check(c["name"], c["title"], c["max_points"], c["passed"], c["message"]) for c in d["checks"]]
        return cls(d["assignment"], d["part"], checks, d.get("notes", {}))

    def __repr__(self) -> str:  # short: the report itself is printed by the checker
        return f"<Result {self.part}: {_fmt(self.total)}/{_fmt(self.max_total)} points>"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _pts(x: float) -> str:
    return f"{x:g} point" + ("" if x == 1 else "s")
