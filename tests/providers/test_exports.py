"""`providers` exports every public name, yet importing it loads no provider module (cheap, no cycles)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import providers


def test_every_public_name_resolves() -> None:
    missing = [name for name in providers.__all__ if getattr(providers, name, None) is None]
    assert missing == []
    assert providers.ClaudeCliConfig.__module__ == "providers.claude_cli"
    assert set(providers.__all__) <= set(dir(providers))


def test_importing_the_package_loads_no_provider_module() -> None:
    code = (
        "import sys, providers\n"
        "heavy = ('httpx', 'providers.claude_cli', 'providers.anthropic', 'providers._http')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        # Star-import loads every lazy name; a cycle between the package and a provider module would fail here.
        "from providers import *\n"
        "print(ClaudeCliConfig.__name__, LimitTracker.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["", "ClaudeCliConfig LimitTracker"]


def test_unknown_names_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        providers.NoSuchThing  # noqa: B018
