"""The standard synthetic workload: one week of mixed AI work, drawn from fixed distributions by a seed.

    task types   TASK_PROFILES: the share of each type and its token ranges (log-normal around a median,
                 clipped to the range): short classification and summarization, code review, long bug fixes
    arrivals     interactive work on weekdays' working hours (08:00-19:00 UTC), a trickle in the evenings and on
                 the weekend; 40% of classification and summarization is deferrable and arrives as one nightly
                 batch per day at 02:00 (low priority, deadline 12 h)
    priorities   interactive: PRIORITY_SHARES; batches: low. Critical tasks have a 30-minute deadline
    teams        platform, support, data (the nightly batches are data's)
    affinity     60% of code reviews and bug fixes name their repository (20 repositories, a few busy ones)
    incidents    outages per vendor (INCIDENT_RATES): Anthropic's hit the Claude Code pool and the Anthropic API
                 together; the local model's machine is down for hours once a week

The same seed always gives the same week; another seed draws another week from the same distributions.
Virtual time: 0 is Monday 00:00 UTC, the week ends at 604,800 s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

WEEK_S = 7 * 24 * 3600
# The wall-clock moment virtual time 0 stands for (a Monday): what reset times the providers report are set from.
WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)
DAY_S = 24 * 3600
DEFAULT_TASKS = 3000


@dataclass(frozen=True, slots=True)
class TokenRange:
    """Log-normal around `median` with spread `sigma`, clipped to [low, high]."""

    low: int
    median: int
    high: int
    sigma: float = 0.8

    def draw(self, rng: random.Random) -> int:
        return max(self.low, min(self.high, round(self.median * math.exp(rng.gauss(0.0, self.sigma)))))


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """One task type: its share of the week's tasks, its prompt and answer sizes, and the answer length the
    task asks for (`max_output_tokens`, what routing estimates cost with)."""

    share: float
    prompt: TokenRange
    output: TokenRange
    max_output_tokens: int


TASK_PROFILES: dict[str, TaskProfile] = {
    "classification": TaskProfile(0.35, TokenRange(150, 600, 3_000), TokenRange(2, 10, 60), 64),
    "summarization": TaskProfile(0.30, TokenRange(800, 4_000, 30_000), TokenRange(80, 300, 1_000), 1_024),
    "code_review": TaskProfile(0.20, TokenRange(1_500, 8_000, 40_000), TokenRange(200, 800, 3_000), 2_048),
    "bug_fix": TaskProfile(0.15, TokenRange(8_000, 35_000, 150_000), TokenRange(800, 3_000, 12_000), 8_192),
}
DEFERRABLE_TYPES = frozenset({"classification", "summarization"})
DEFERRABLE_SHARE = 0.4
BATCH_HOUR = 2
BATCH_DEADLINE_S = 12 * 3600
CRITICAL_DEADLINE_S = 30 * 60
PRIORITY_SHARES: dict[str, float] = {"critical": 0.03, "high": 0.17, "normal": 0.65, "low": 0.15}
TEAM_SHARES: dict[str, float] = {"platform": 0.55, "support": 0.45}
BATCH_TEAM = "data"
AFFINITY_TYPES = frozenset({"code_review", "bug_fix"})
AFFINITY_SHARE = 0.6
REPOSITORIES = 20
# Relative arrival rate of interactive work by hour of a weekday (UTC); weekend days at WEEKEND_RATE of it.
HOUR_RATES: tuple[float, ...] = tuple(1.0 if 8 <= h < 19 else 0.4 if h in (7, 19, 20) else 0.06 for h in range(24))
WEEKEND_RATE = 0.2


@dataclass(frozen=True, slots=True)
class IncidentRate:
    """Outages of one vendor per week: `1 + Poisson(extra_per_week)` of them, each `minutes` long (uniform),
    failing calls with one of `outcomes` (the error classes' outcome names)."""

    extra_per_week: float
    minutes: tuple[float, float]
    outcomes: tuple[str, ...]


INCIDENT_RATES: dict[str, IncidentRate] = {
    "anthropic": IncidentRate(1.0, (15.0, 90.0), ("overloaded", "overloaded", "unavailable")),
    "openai": IncidentRate(0.5, (10.0, 60.0), ("unavailable", "timeout")),
    "local": IncidentRate(0.0, (120.0, 600.0), ("unavailable",)),
}


@dataclass(frozen=True, slots=True)
class SyntheticTask:
    id: str
    type: str
    arrival_s: float
    priority: str
    team: str
    prompt_tokens: int
    # What the answer really takes (the provider's usage); `max_output_tokens` is the task's own estimate.
    output_tokens: int
    max_output_tokens: int
    affinity: str | None = None
    # Seconds after arrival by which the answer is wanted; None: no deadline.
    deadline_s: float | None = None
    deferrable: bool = False


@dataclass(frozen=True, slots=True)
class Incident:
    vendor: str
    start_s: float
    end_s: float
    outcome: str


@dataclass(frozen=True, slots=True)
class SyntheticWeek:
    seed: int
    tasks: tuple[SyntheticTask, ...]
    incidents: tuple[Incident, ...]


def wall_clock(clock: Callable[[], float]) -> Callable[[], datetime]:
    """The wall clock that goes with virtual `clock`: WEEK_START plus its seconds."""
    return lambda: WEEK_START + timedelta(seconds=clock())


def synthetic_week(seed: int = 1, tasks: int = DEFAULT_TASKS) -> SyntheticWeek:
    """The week drawn by `seed`: `tasks` tasks in arrival order, and the vendors' incidents."""
    rng = random.Random(seed)
    drawn = [_task(rng) for _ in range(tasks)]
    drawn.sort(key=lambda t: t.arrival_s)
    numbered = tuple(_numbered(t, i) for i, t in enumerate(drawn, start=1))
    return SyntheticWeek(seed=seed, tasks=numbered, incidents=_incidents(rng))


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _task(rng: random.Random) -> SyntheticTask:
    task_type = _pick(rng, {name: p.share for name, p in TASK_PROFILES.items()})
    profile = TASK_PROFILES[task_type]
    prompt, output = profile.prompt.draw(rng), profile.output.draw(rng)
    affinity = None
    if task_type in AFFINITY_TYPES and rng.random() < AFFINITY_SHARE:
        # A few busy repositories, many quiet ones (Zipf-like).
        repo = rng.choices(range(1, REPOSITORIES + 1), weights=[1 / r for r in range(1, REPOSITORIES + 1)])[0]
        affinity = f"repo-{repo:02d}"
    common = {
        "id": "",
        "type": task_type,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "max_output_tokens": profile.max_output_tokens,
        "affinity": affinity,
    }
    if task_type in DEFERRABLE_TYPES and rng.random() < DEFERRABLE_SHARE:
        day = rng.randrange(7)
        # Submitted together; a few seconds apart only so that the order within a batch is the draw's.
        arrival = day * DAY_S + BATCH_HOUR * 3600 + rng.uniform(0, 60)
        return SyntheticTask(
            **common,
            arrival_s=arrival,
            priority="low",
            team=BATCH_TEAM,
            deadline_s=BATCH_DEADLINE_S,
            deferrable=True,
        )
    priority = _pick(rng, PRIORITY_SHARES)
    return SyntheticTask(
        **common,
        arrival_s=_interactive_arrival(rng),
        priority=priority,
        team=_pick(rng, TEAM_SHARES),
        deadline_s=CRITICAL_DEADLINE_S if priority == "critical" else None,
    )


def _interactive_arrival(rng: random.Random) -> float:
    day = rng.choices(range(7), weights=[1.0] * 5 + [WEEKEND_RATE] * 2)[0]
    hour = rng.choices(range(24), weights=HOUR_RATES)[0]
    return day * DAY_S + hour * 3600 + rng.uniform(0, 3600)


def _numbered(task: SyntheticTask, n: int) -> SyntheticTask:
    return replace(task, id=f"t{n:05d}")


def _incidents(rng: random.Random) -> tuple[Incident, ...]:
    found: list[Incident] = []
    for vendor, rate in INCIDENT_RATES.items():
        for _ in range(1 + _poisson(rng, rate.extra_per_week)):
            start = rng.uniform(0, WEEK_S)
            length = rng.uniform(*rate.minutes) * 60
            found.append(Incident(vendor, start, start + length, rng.choice(rate.outcomes)))
    return tuple(sorted(found, key=lambda i: (i.start_s, i.vendor)))


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small.
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
