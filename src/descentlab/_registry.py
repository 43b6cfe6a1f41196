"""A small name -> factory registry shared by optimizers, schedules, tasks and studies."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class Registry:
    """Maps lower-case names to factories with a one-line description; unknown names suggest close ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., Any], str]] = {}

    def register(self, name: str, factory: Callable[..., Any], description: str = "") -> None:
        """Add ``name`` (overwrites an earlier entry of the same name)."""
        self._entries[name.lower()] = (factory, description)

    def available(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description."""
        return {k: self._entries[k][1] for k in self.available()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def factory(self, name: str) -> Callable[..., Any]:
        """The factory for ``name``; ValueError naming close matches when it is unknown."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = name.lower()
        if key not in self._entries:
            raise ValueError(unknown_name_message(self.kind, name, self.available()))
        return self._entries[key][0]


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    """One line: unknown KIND 'name'; did you mean ...? and the list of valid names."""
    close = difflib.get_close_matches(name.lower(), choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (available: {', '.join(choices)})"
