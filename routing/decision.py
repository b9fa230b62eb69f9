"""A task's routing decision while it is being made, and the record it becomes.

The planner and the router fill a `DecisionDraft` (plain slots: it is written on every decision) and freeze
it into the ledger's `RouteDecision` once the task is routed. The draft keeps each refusal as it was given:
a budget's is a `BudgetRefusal`, so the router knows a task refused by budgets alone (it fails
`budget_exceeded` and the exhaustion is reported) without reading the reason's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger import DecisionAffinity, DecisionCache, DecisionEstimate, DecisionPreference, RouteDecision
from routing.budget import BudgetRefusal

# Why a provider was left out: text (`capability`, `circuit_open`, `quota: ...`) or a budget's refusal.
Refusal = str | BudgetRefusal


@dataclass(slots=True)
class DecisionDraft:
    strategy: str
    # What every plan of the task prices and admits it by.
    prompt_tokens: int
    max_output_tokens: int
    affinity_key: str | None = None
    sticky: str | None = None  # the provider the affinity key pointed to when the task was planned
    candidates: list[str] = field(default_factory=list)
    skipped: dict[str, Refusal] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    chosen: str | None = None
    # The provider or model the task asked for and whether its first plan put it first.
    preference: DecisionPreference | None = None
    # Set when the response cache served the task: the answer it came from (routing.cache).
    cache: DecisionCache | None = None

    def budget_refusals(self) -> list[BudgetRefusal] | None:
        """The refusals when budgets alone left every provider out; None otherwise (or when none was)."""
        refusals = [r for r in self.skipped.values() if isinstance(r, BudgetRefusal)]
        return refusals if refusals and len(refusals) == len(self.skipped) else None

    def freeze(self) -> RouteDecision:
        # Built from values the engine made itself, so without validating them again (one per routed task).
        return RouteDecision.model_construct(
            strategy=self.strategy,
            candidates=tuple(self.candidates),
            skipped={provider: str(reason) for provider, reason in self.skipped.items()},
            order=tuple(self.order),
            chosen=self.chosen,
            estimate=DecisionEstimate(self.prompt_tokens, self.max_output_tokens),
            affinity=None if self.affinity_key is None else DecisionAffinity(self.affinity_key, self.sticky),
            preference=self.preference,
            cache=self.cache,
        )


__all__ = ["DecisionDraft", "Refusal"]
