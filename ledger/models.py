"""SQLAlchemy 2 models for the usage ledger (DESIGN.md "The ledger"). All timestamps are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

from ledger.records import RouteDecision


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite, which stores no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecisionJSON(TypeDecorator[RouteDecision]):
    """A task's routing decision: the model in, its JSON document in the column, the model out."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: RouteDecision | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else value.document()

    def process_result_value(self, value: dict[str, Any] | None, dialect: Dialect) -> RouteDecision | None:
        return None if value is None else RouteDecision.model_validate(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_name: Mapped[str] = mapped_column(String(200), index=True)
    batch_hash: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # a RunStatus
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The process running it ("host:pid") and when it last renewed its claim; see Ledger.start_or_resume_run.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_runs_name_hash", "batch_name", "batch_hash", "started_at"),)


class TaskRow(Base):
    __tablename__ = "tasks"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    task_type: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(20))
    team: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # a TaskStatus
    provider_id: Mapped[str | None] = mapped_column(String(100))
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[RouteDecision | None] = mapped_column(DecisionJSON)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None]


class ProviderUsage(Base):
    """One row per provider call attempt."""

    __tablename__ = "provider_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    task_id: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str] = mapped_column(String(100))
    subscription: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    task_type: Mapped[str] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(100))
    strategy: Mapped[str | None] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(30))
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The answer, on successful attempts only (see migration 0002).
    output: Mapped[str | None] = mapped_column(Text)
    tokens_input: Mapped[int] = mapped_column(Integer, default=0)
    tokens_output: Mapped[int] = mapped_column(Integer, default=0)
    tokens_cache_read: Mapped[int] = mapped_column(Integer, default=0)
    tokens_cache_write: Mapped[int] = mapped_column(Integer, default=0)
    tokens_reasoning: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # The list price when it differs from what was charged (a subscription login's call); see migration 0008.
    list_price_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime]
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    # The response cache (migration 0009): the task's key on attempts routed with the cache on; a cache hit's row
    # (provider `cache`, no cost, no tokens) is marked, names the attempt it came from and what that one cost.
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cache_source: Mapped[str | None] = mapped_column(String(300))
    cache_saved_usd: Mapped[float | None] = mapped_column(Float)
    # The vendor batch the attempt was answered (or refused) in (migration 0012); None for a live call.
    vendor_batch_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_usage_run_task_attempt", "run_id", "task_id", "attempt"),
        Index("ix_usage_provider_started", "provider_id", "started_at"),
    )


class ProviderRow(Base):
    __tablename__ = "providers"

    provider_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    capabilities: Mapped[dict[str, Any] | None]
    health: Mapped[dict[str, Any] | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    updated_at: Mapped[datetime]


class ProviderEvent(Base):
    """Circuit and quota state changes over time."""

    __tablename__ = "provider_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(100), index=True)
    subscription: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(50))
    detail: Mapped[dict[str, Any] | None]
    at: Mapped[datetime] = mapped_column(index=True)


class ProviderOverlayRow(Base):
    """A provider added, changed or removed through the HTTP API: it wins over the providers file's entry of the
    same id (the file itself is never rewritten). `config` None is a removal."""

    __tablename__ = "provider_overlays"

    provider_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    config: Mapped[dict[str, Any] | None]  # the provider's settings, never secrets (keys by env var name)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class AdminChange(Base):
    """Who changed what through the API, and when."""

    __tablename__ = "admin_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    who: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None]


class TaskPreferenceRow(Base):
    """A provider (or model) to try first for a task that has not run yet, set through the API."""

    __tablename__ = "task_preferences"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime]


# --- the limits every routing process shares (ledger.limit_store; migration 0005) -----------------------------
# Times here are seconds since the epoch on the store's clock (the database's), not each machine's.


class SharedLock(Base):
    """One row whose update serializes every change of the shared limits on SQLite (it takes the write lock), so
    each reservation sees every other one; PostgreSQL uses an advisory lock instead (ledger.limit_store)."""

    __tablename__ = "shared_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ticks: Mapped[int] = mapped_column(BigInteger, default=0)


class SharedCounter(Base):
    """Usage in one bucket of one scope: settled (`requests`, `tokens`, `cost`) and reserved by calls in flight."""

    __tablename__ = "shared_counters"

    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    bucket_s: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    requests: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_requests: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_tokens: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_cost: Mapped[float] = mapped_column(Float, default=0.0)


class SharedReservation(Base):
    """A call in flight: what it reserved where. Settled by its process, or expired and charged at its estimate."""

    __tablename__ = "shared_reservations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    requests: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    # The counter rows it was added to: [[scope, bucket_s, bucket_start], ...].
    rows: Mapped[dict[str, Any]] = mapped_column(JSON)


class SharedBlock(Base):
    """A provider or subscription kept out until `until` (a quota error, a long retry-after), for every process."""

    __tablename__ = "shared_blocks"

    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    until: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(300))
    set_by: Mapped[str] = mapped_column(String(200))


class SharedCircuit(Base):
    """A provider's circuit opened by some process, open for every process until `open_until`."""

    __tablename__ = "shared_circuits"

    provider_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    open_until: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(200))


class UsageTotal(Base):
    """The sums of pruned attempts (`switchboard db prune`), grouped by the keys the usage report slices on, so a
    report over a pruned period still shows its cost, tokens, attempts and outcomes. Several rows may share a
    key (one per prune); readers add them up."""

    __tablename__ = "usage_totals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # the UTC day, 'YYYY-MM-DD'
    provider_id: Mapped[str] = mapped_column(String(100))
    subscription: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    task_type: Mapped[str] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(100))
    strategy: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(30))
    attempts: Mapped[int] = mapped_column(Integer)
    first_attempts: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    # The pruned attempts at list price (see ProviderUsage.list_price_usd); NULL on rows pruned before 0008.
    list_price_usd: Mapped[float | None] = mapped_column(Float)
    # What the pruned cache hits saved (see ProviderUsage.cache_saved_usd); NULL on rows pruned before 0010.
    cache_saved_usd: Mapped[float | None] = mapped_column(Float)
    tokens_input: Mapped[int] = mapped_column(Integer)
    tokens_output: Mapped[int] = mapped_column(Integer)
    tokens_cache_read: Mapped[int] = mapped_column(Integer)
    tokens_cache_write: Mapped[int] = mapped_column(Integer)
    tokens_reasoning: Mapped[int] = mapped_column(Integer)
    pruned_at: Mapped[datetime]


class VendorBatchRequest(Base):
    """A task sent to a vendor's batch API (Anthropic Message Batches, OpenAI Batch): written before the run waits
    on it, so a resumed run polls the same vendor batch instead of submitting the task again (migration 0011)."""

    __tablename__ = "vendor_batch_requests"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    vendor_batch_id: Mapped[str] = mapped_column(String(200), index=True)
    custom_id: Mapped[str] = mapped_column(String(64))
    # waiting | done | fell_back (answered live instead: deadline, expiry, cancellation) | failed
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiDeferredTask(Base):
    """A task posted to the HTTP API with a deadline, kept while it routes in the background (it may wait hours in
    a vendor batch): what a restarted API needs to route it again, prompt included (migration 0013). Deleted once
    the task's outcome is recorded."""

    __tablename__ = "api_deferred_tasks"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The provider-facing task (providers.AITask) as a JSON document.
    task: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The API process routing it ("host:pid"); None: released by a clean stop, for the next start to take.
    owner: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
