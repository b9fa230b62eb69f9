"""Following the HTTP API's provider overlay while routing: a running router looks at the overlay's version at
most every `CHECK_EVERY_S` and, when it changed, adopts the providers it now says (routing.adopt_providers), so a
provider added, changed or removed through the API takes effect in every running router without a restart."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ledger import Ledger, OverlayVersion, overlay_version, provider_overlays
from routing import Router, SwitchboardConfig, adopt_providers, apply_overlay, engine_loop

CHECK_EVERY_S = 1.0


@dataclass
class OverlayFollower:
    ledger: Ledger
    base: SwitchboardConfig  # the providers file's config, before the overlay
    seen: OverlayVersion | None = None
    _next_check: float = field(default=0.0, repr=False)

    def current(self) -> SwitchboardConfig:
        """The file's config with the overlay as it is now (and remember its version)."""
        self.seen = overlay_version(self.ledger)
        self._next_check = time.monotonic() + CHECK_EVERY_S
        return apply_overlay(self.base, provider_overlays(self.ledger))

    def changed(self, *, force: bool = False) -> SwitchboardConfig | None:
        """The new config when the overlay changed since it was last read, else None (checked at most every
        CHECK_EVERY_S unless `force`). Call from any thread but the engine loop's."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return None
        self._next_check = now + CHECK_EVERY_S
        if overlay_version(self.ledger) == self.seen:
            return None
        return self.current()


def follow_overlay(follower: OverlayFollower | None, router: Router) -> SwitchboardConfig | None:
    """Adopt the overlay's providers in `router` if the overlay changed; the new config, or None. Call from a
    thread other than the engine loop's."""
    if follower is None:
        return None
    config = follower.changed()
    if config is not None:
        engine_loop().run(adopt_providers(router, config))
    return config


__all__ = ["CHECK_EVERY_S", "OverlayFollower", "follow_overlay"]
