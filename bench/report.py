"""Shared shape of a benchmark result section, and the exception for a row that cannot be measured yet."""

from __future__ import annotations

from dataclasses import dataclass, field


class NotAvailable(Exception):
    """A scenario whose code has not landed yet (the bench prints a row saying so)."""


@dataclass
class Section:
    title: str
    command: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    targets_met: bool | None = None

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"Command: `{self.command}`", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("| " + " | ".join("---" for _ in self.headers) + " |")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        lines.append("")
        return "\n".join(lines)
