"""Affinity: tasks sharing a key stick to the provider that last served that key."""

from __future__ import annotations

from collections import OrderedDict

MAX_KEYS = 100_000


class AffinityMap:
    """Key -> provider that last served it. The router puts that provider first while it is eligible
    (healthy, with quota); when it is not, the task goes elsewhere and the new provider becomes the sticky one.
    Bounded (least recently used keys are forgotten) so a long-lived engine does not grow without end."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._providers: OrderedDict[str, str] = OrderedDict()
        self._max_keys = max_keys

    def get(self, key: str | None) -> str | None:
        if key is None:
            return None
        provider_id = self._providers.get(key)
        if provider_id is not None:
            self._providers.move_to_end(key)
        return provider_id

    def remember(self, key: str | None, provider_id: str) -> None:
        if key is None:
            return
        self._providers[key] = provider_id
        self._providers.move_to_end(key)
        while len(self._providers) > self._max_keys:
            self._providers.popitem(last=False)
