"""Batch specs (DESIGN.md "Batch spec"): loading, validation and the DAG's shape."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from providers import AITask, Priority, name_problem
from routing import InputError, check_strategy, describe_validation_error, load_document


class SpecError(InputError):
    """The batch spec is invalid."""


class TaskDefaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Priority = Priority.NORMAL
    max_attempts: int = Field(default=3, ge=1, le=50)
    max_output_tokens: int = Field(default=1024, ge=1)
    # The response cache (when the providers file turns it on) may answer tasks from earlier identical ones.
    cache: bool = True


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    type: str = Field(min_length=1)
    prompt: str
    depends_on: list[str] = Field(default_factory=list)
    priority: Priority | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    max_output_tokens: int | None = Field(default=None, ge=1)
    affinity: str | None = None
    team: str | None = None
    workdir: str | None = None
    strategy: str | None = None
    # A preference: tried first when that provider (or one serving that model) can take the task; else routing
    # goes on as usual and the decision says why.
    provider: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    # False: never served from the response cache, nor stored for later tasks (None: the batch's default).
    cache: bool | None = None
    # How long after the run starts the answer is needed (`12h`, `90m`, `1h30m`, `45s`): a task that can wait
    # may go to a provider's vendor batch API at its batch price (batches.deferred), and goes live in time.
    deadline: str | None = None

    @field_validator("deadline")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_s(value)
        return value

    @property
    def deadline_s(self) -> float | None:
        return None if self.deadline is None else duration_s(self.deadline)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if "\x00" in value:  # no process argument, and no PostgreSQL text, can carry it
            raise ValueError(f"must not contain NUL (U+0000 at position {value.index(chr(0))})")
        return value

    @field_validator("id", "type", "team", "affinity", "workdir", "provider", "model")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return _printable(value)

    @field_validator("depends_on")
    @classmethod
    def _printable_ids(cls, value: list[str]) -> list[str]:
        for dep in value:
            _printable(dep)
        return value

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str | None) -> str | None:
        return None if value is None else check_strategy(value)


class BatchSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    team: str | None = None
    workdir: str | None = None
    defaults: TaskDefaults = TaskDefaults()
    # True: every task may wait for a vendor batch API (within the vendor's 24 h window, or its own `deadline`).
    deferrable: bool = False
    tasks: list[TaskSpec] = Field(min_length=1)

    @field_validator("name", "team", "workdir")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return _printable(value)

    # Computed once per (frozen) spec: the engine looks tasks up by id several times per node, and the hash of a
    # large spec costs milliseconds. Cached properties live outside the fields (equality and dumps ignore them).
    @cached_property
    def _index(self) -> dict[str, TaskSpec]:
        return {t.id: t for t in self.tasks}

    @cached_property
    def _digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def task(self, task_id: str) -> TaskSpec:
        return self._index[task_id]

    def content_hash(self) -> str:
        """Identifies the spec's content, so re-running the same spec resumes its unfinished run."""
        return self._digest

    def to_ai_task(self, spec: TaskSpec, context: dict[str, str] | None = None) -> AITask:
        """The provider-facing task, with batch defaults applied and upstream outputs as context."""
        return AITask(
            id=spec.id,
            type=spec.type,
            prompt=spec.prompt,
            priority=spec.priority or self.defaults.priority,
            max_attempts=spec.max_attempts or self.defaults.max_attempts,
            max_output_tokens=spec.max_output_tokens or self.defaults.max_output_tokens,
            affinity=spec.affinity,
            team=spec.team or self.team,
            workdir=spec.workdir or self.workdir,
            context=context or {},
            cache=self.defaults.cache if spec.cache is None else spec.cache,
            metadata=_metadata(spec, self.deferrable),
        )

    def layers(self) -> list[list[TaskSpec]]:
        """Tasks grouped so every task comes after all of its dependencies (Kahn's algorithm, spec order kept)."""
        done: set[str] = set()
        remaining = list(self.tasks)
        layers: list[list[TaskSpec]] = []
        while remaining:
            ready = [t for t in remaining if all(d in done for d in t.depends_on)]
            if not ready:  # validate() rules this out; guard against use on an unvalidated spec
                raise SpecError(self.name, [f"dependency cycle among {', '.join(t.id for t in remaining)}"])
            layers.append(ready)
            done.update(t.id for t in ready)
            remaining = [t for t in remaining if t.id not in done]
        return layers

    def dependents(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for dep in t.depends_on:
                result[dep].append(t.id)
        return result


def _printable(value: str | None) -> str | None:
    """Names are stored, printed and sent on: a control character in one is refused, naming where it is."""
    problem = None if value is None else name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _metadata(spec: TaskSpec, deferrable: bool = False) -> dict[str, str]:
    """What routing reads from the task besides its fields: its own strategy, its provider/model preference, and
    whether (and how long) it may wait for a vendor batch (`deferrable`; `deadline_s` after the run's start)."""
    if spec.strategy is None and spec.provider is None and spec.model is None and spec.deadline is None:
        return {"deferrable": "true"} if deferrable else {}
    pairs = (("strategy", spec.strategy), ("provider", spec.provider), ("model", spec.model))
    metadata = {key: value for key, value in pairs if value is not None}
    return {**metadata, **deferral_metadata(spec.deadline_s, deferrable)}


def deferral_metadata(deadline_s: float | None, deferrable: bool = False) -> dict[str, str]:
    """How a task tells routing it may wait for a vendor batch (batches.deferred reads it): `deferrable`, and
    `deadline_s`, counted from its run's start, when it has a deadline."""
    if deadline_s is not None:
        # 15 digits, not `g`'s 6: an API task's deadline counts from its day's run start, up to days later.
        return {"deferrable": "true", "deadline_s": f"{deadline_s:.15g}"}
    return {"deferrable": "true"} if deferrable else {}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
MAX_DEADLINE_S = 366 * 86400.0


def duration_s(text: str) -> float:
    """Seconds in a duration such as `12h`, `90m`, `1h30m`, `45s` or `1d`; ValueError saying what is expected."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit (d, h, m, s), e.g. 12h, 90m or 1h30m")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a deadline must be longer than 0 s")
    if seconds > MAX_DEADLINE_S:  # far past any vendor's window; and a date that far out overflows
        raise ValueError(f"{text!r}: a deadline must be at most 366d")
    return seconds


def load_spec(path: str | Path) -> BatchSpec:
    """The spec in a YAML or JSON file, checked; parsed once per version of the file in this process."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError:
        return _parse_file(file)  # says what is wrong with the path
    return _parse_unchanged(file, file.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parse_unchanged(file: Path, resolved: Path, mtime_ns: int, size: int) -> BatchSpec:
    # The CLI checks a spec before anything runs, then the flow it starts is handed the path (a short
    # parameter for Prefect to store and show) and loads it again: a 1,000-task spec is parsed once.
    return _parse_file(file)


def _parse_file(file: Path) -> BatchSpec:
    return parse_spec(load_document(file, SpecError), str(file))


def parse_spec(doc: dict[str, Any], source: str) -> BatchSpec:
    try:
        spec = BatchSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(source, _name_tasks(describe_validation_error(exc), doc)) from None
    problems = graph_problems(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def task_location(index: int, task_id: object) -> str:
    """Where a task is in the spec, the one form every task-level error uses: `tasks[3] (id 'review-2')`."""
    return f"tasks[{index}]" + (f" (id {task_id!r})" if task_id else "")


def _name_tasks(problems: list[str], doc: dict[str, Any]) -> list[str]:
    """Turn `tasks.3.prompt` into `tasks[3] (id 'review-2').prompt` so the user finds the task."""
    tasks = doc.get("tasks") if isinstance(doc.get("tasks"), list) else []
    named = []
    for line in problems:
        parts = line.split(".", 2)
        if len(parts) >= 2 and parts[0] == "tasks" and parts[1].split(":")[0].isdigit():
            index = int(parts[1].split(":")[0])
            task_id = tasks[index].get("id") if index < len(tasks) and isinstance(tasks[index], dict) else None
            rest = line[len(f"tasks.{index}") :]
            line = task_location(index, task_id) + rest
        named.append(line)
    return named


def graph_problems(spec: BatchSpec) -> list[str]:
    """Duplicate ids, unknown dependencies and cycles (each cycle named as a path)."""
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for i, t in enumerate(spec.tasks):
        if t.id in first_index:
            also = task_location(first_index[t.id], t.id)
            problems.append(f"{task_location(i, t.id)}.id: duplicate id {t.id!r} (also {also})")
        first_index.setdefault(t.id, i)
    for i, t in enumerate(spec.tasks):
        for dep in t.depends_on:
            if dep not in first_index:
                problems.append(f"{task_location(i, t.id)}.depends_on: unknown task {dep!r}")
            elif dep == t.id:
                problems.append(f"{task_location(i, t.id)}.depends_on: a task cannot depend on itself")
    if problems:
        return problems
    cycle = find_cycle({t.id: t.depends_on for t in spec.tasks})
    if cycle:
        problems.append(f"tasks: dependency cycle {' -> '.join(cycle)}")
    return problems


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a closed path (first node repeated at the end), or None; iterative DFS."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in graph:
        if color[root] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        path = [root]
        color[root] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = black
                stack.pop()
                path.pop()
            elif color.get(child) == grey:
                return [*path[path.index(child) :], child]
            elif color.get(child) == white:
                color[child] = grey
                stack.append((child, iter(graph[child])))
                path.append(child)
    return None


__all__ = [
    "BatchSpec",
    "SpecError",
    "TaskDefaults",
    "TaskSpec",
    "deferral_metadata",
    "duration_s",
    "find_cycle",
    "graph_problems",
    "load_spec",
    "parse_spec",
    "task_location",
]
