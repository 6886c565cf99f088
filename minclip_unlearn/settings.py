"""The knobs of each edit method, one small frozen dataclass per method, validated on creation."""
from __future__ import annotations

from dataclasses import dataclass, fields

from .logit_edit import OUTSIDE


@dataclass(frozen=True)
class Hard:
    """The retain-protected hard projector I - alpha U U^T (METHOD.md §4a); rho="auto": geometry.auto_rho."""

    alpha: float = 1.0
    rho: float | str = 0.99

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha (strength) must be in [0, 1], got {self.alpha}")
        if self.rho != "auto" and not 0.0 < float(self.rho) <= 1.0:
            raise ValueError(f"rho must be in (0, 1] or 'auto', got {self.rho!r}")


@dataclass(frozen=True)
class Soft:
    """The soft CCUP closed form (METHOD.md §4b): forget weight lam, retain weight mu."""

    lam: float = 100.0
    mu: float = 10.0

    def __post_init__(self):
        if self.lam < 0 or self.mu < 0:
            raise ValueError(f"lam and mu must be >= 0, got lam={self.lam}, mu={self.mu}")


@dataclass(frozen=True)
class Logit:
    """The logit-constrained edit (the book's own extension, METHOD.md §4e; see logit_edit.py).

    gamma: forgotten logit -> mean of the other classes' minus gamma of their spread; alpha: strength;
    rho: energy share of each retained layer whose logits are held; lam / mu: None for hard constraints,
    else soft weights on the forget targets / held logits; outside: logits off the retained span.
    """

    gamma: float = 1.0
    alpha: float = 1.0
    rho: float = 1.0
    lam: float | None = None
    mu: float | None = None
    outside: str = "free"

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha (strength) must be in [0, 1], got {self.alpha}")
        if not 0.0 < self.rho <= 1.0:
            raise ValueError(f"rho must be in (0, 1], got {self.rho}")
        if (self.lam is not None and self.lam <= 0) or (self.mu is not None and self.mu < 0):
            raise ValueError(f"lam must be > 0 and mu >= 0 (or None: hard), got lam={self.lam}, mu={self.mu}")
        if self.outside not in OUTSIDE:
            raise ValueError(f"unknown outside {self.outside!r}; valid: {', '.join(OUTSIDE)}")


SETTINGS = {"hard": Hard, "soft": Soft, "logit": Logit}
METHODS = tuple(SETTINGS)
def settings_for(method: str = "hard", alpha: float | None = None, rho: float | str | None = None,
                 lam: float | None = None, mu: float | None = None) -> Hard | Soft | Logit:
    """A method name and flat keywords (None: the method's default; knobs it has no use for are ignored) -> its settings."""
    if method not in SETTINGS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    cls = SETTINGS[method]
    given = {"alpha": alpha, "rho": rho, "lam": lam, "mu": mu}
    return cls(**{f.name: given[f.name] for f in fields(cls) if given.get(f.name) is not None})


def method_name(settings: Hard | Soft | Logit) -> str:
    """A settings object -> its method's name ('hard', 'soft' or 'logit')."""
    names = [name for name, cls in SETTINGS.items() if isinstance(settings, cls)]
    if not names:
        raise ValueError(f"settings must be one of {', '.join(c.__name__ for c in SETTINGS.values())}, got {settings!r}")
    return names[0]
