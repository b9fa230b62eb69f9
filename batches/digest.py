"""A large run in a screenful: its tasks grouped by status and provider, and the failed and skipped ones listed.

`switchboard run` and `show` print every task in a table up to `DIGEST_ABOVE` tasks; above that, a 10,000-row
table hides the few failures a user needs, so they print this digest instead (the `--json` object still holds
every task). `select_tasks` is the `show --status/--provider/--type` filter.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from batches.summary import RunSummary, TaskSummary
from ledger import TaskStatus, count_failovers

# Above this many tasks the human output is a digest, not one row per task (a bordered table row is at least
# one line; 30 rows with the header, totals and links fill a 40-line terminal).
DIGEST_ABOVE = 30
# Failed and skipped tasks listed by name in a digest; the rest are counted, with the command that lists them.
LISTED = 10
# Status-and-provider groups shown; the rest are folded into one row, so a run over many providers stays short.
MAX_GROUPS = 12
# A listed task's reason is cut to this many characters (one line each, whatever the error said).
REASON_CHARS = 120

_STATUS_ORDER = [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED, TaskStatus.PENDING]
# What a digest lists by name: what a user has to act on.
LISTED_STATUSES = (TaskStatus.FAILED, TaskStatus.SKIPPED)
NO_PROVIDER = "-"
OTHERS = "(others)"


@dataclass(frozen=True, slots=True)
class DigestGroup:
    """Tasks of one status on one provider (the one that answered, else the last one tried, else `-`).

    Latency percentiles are over the tasks' latencies (first attempt's start to last attempt's end), nearest
    rank; None when no task of the group made an attempt.
    """

    status: str
    provider: str
    tasks: int
    cost_usd: float
    p50_ms: float | None
    p95_ms: float | None
    failovers: int


@dataclass(frozen=True, slots=True)
class ListedTask:
    id: str
    status: TaskStatus
    provider: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunDigest:
    tasks: int
    groups: list[DigestGroup]
    listed: list[ListedTask]
    unlisted: int  # failed and skipped tasks beyond `listed`

    @property
    def problems(self) -> int:
        return len(self.listed) + self.unlisted


def needs_digest(tasks: int) -> bool:
    return tasks > DIGEST_ABOVE


def digest(summary: RunSummary, *, listed: int = LISTED, max_groups: int = MAX_GROUPS) -> RunDigest:
    """Group `summary`'s tasks by status and provider; list the first `listed` failed and skipped ones."""
    buckets: dict[tuple[str, str], list[TaskSummary]] = {}
    for task in summary.tasks:
        buckets.setdefault((task.status, _provider_of(task)), []).append(task)
    rank = {status: i for i, status in enumerate(_STATUS_ORDER)}
    ordered = sorted(buckets.items(), key=lambda item: (rank.get(item[0][0], len(rank)), -len(item[1]), item[0][1]))
    groups = [_group(status, provider, tasks) for (status, provider), tasks in ordered]
    if len(groups) > max_groups:
        rest = [t for _, tasks in ordered[max_groups - 1 :] for t in tasks]
        groups = [*groups[: max_groups - 1], _group(OTHERS, OTHERS, rest)]
    problems = [t for t in summary.tasks if t.status in LISTED_STATUSES]
    problems.sort(key=lambda t: LISTED_STATUSES.index(t.status))  # failed first: they cost something
    shown = [ListedTask(t.id, t.status, _provider_of(t), _reason(t)) for t in problems[:listed]]
    return RunDigest(tasks=len(summary.tasks), groups=groups, listed=shown, unlisted=len(problems) - len(shown))


def select_tasks(
    summary: RunSummary,
    *,
    statuses: Collection[str] = (),
    providers: Collection[str] = (),
    types: Collection[str] = (),
) -> RunSummary:
    """The summary with only the tasks matching every given filter (an empty filter matches all); the run's
    header and totals stay the whole run's. A task matches a provider that answered it or that it tried."""

    def matches(task: TaskSummary) -> bool:
        if statuses and task.status not in statuses:
            return False
        if types and task.type not in types:
            return False
        tried = {a.provider for a in task.attempts} | ({task.provider} if task.provider else set())
        return not providers or bool(tried & set(providers))

    return summary.model_copy(update={"tasks": [t for t in summary.tasks if matches(t)]})


def _provider_of(task: TaskSummary) -> str:
    if task.provider:
        return task.provider
    return task.attempts[-1].provider if task.attempts else NO_PROVIDER


def _reason(task: TaskSummary) -> str:
    if task.error:
        reason = task.error
    elif task.attempts:
        last = task.attempts[-1]
        reason = f"{last.where}: {last.outcome}" + (f" ({last.error_type})" if last.error_type else "")
    else:
        reason = str(task.status)
    reason = " ".join(reason.split())  # one line, whatever the provider's message looked like
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def _group(status: str, provider: str, tasks: Sequence[TaskSummary]) -> DigestGroup:
    latencies = sorted(t.latency_ms for t in tasks if t.attempts)
    return DigestGroup(
        status=status,
        provider=provider,
        tasks=len(tasks),
        cost_usd=sum(t.cost_usd for t in tasks),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        failovers=sum(count_failovers(t.attempts) for t in tasks),
    )


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for none."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


__all__ = [
    "DIGEST_ABOVE",
    "LISTED",
    "LISTED_STATUSES",
    "DigestGroup",
    "ListedTask",
    "RunDigest",
    "digest",
    "needs_digest",
    "percentile",
    "select_tasks",
]
