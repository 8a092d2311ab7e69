"""Progress bars and tables shared by every command (rich)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Tables and messages go to stdout; progress goes to stderr so `--json` output stays clean.
console = Console()
err_console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``412.3 img/s``."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit", "it")
        scale, per = (60, "min") if task.fields.get("per_minute") else (1, "s")
        if task.speed is None:
            return Text(f"-- {unit}/{per}", style="progress.data.speed")
        return Text(f"{task.speed * scale:,.1f} {unit}/{per}", style="progress.data.speed")


def progress_bar(transient: bool = False, enabled: bool = True,
                 speed_estimate_period: float = 30.0) -> Progress:
    """A progress bar with count, rate, elapsed time, ETA and a free ``info`` field; the
    rate is measured over the last ``speed_estimate_period`` seconds."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=transient,
        # A transient bar off a terminal would only leave blank lines in logs.
        disable=not enabled or (transient and not sys.stderr.isatty()),
        # Without a terminal (CI logs) rich would print only at the end; refresh less often.
        refresh_per_second=4 if sys.stderr.isatty() else 0.2,
        speed_estimate_period=speed_estimate_period,
    )


def add_task(bar: Progress, description: str, total: int, unit: str = "img",
             per_minute: bool = False):
    """A task of ``total`` items; its rate shows per second, or per minute for slow ones."""
    return bar.add_task(description, total=total, unit=unit, info="", per_minute=per_minute)


def log(message: str) -> None:
    """A line about a long step in progress (a run's start, each epoch, each trial), printed
    as it happens; results are returned, and printed by the CLI. Commands whose stdout is
    machine-read (``--json``) log nothing. ``console.quiet = True`` silences it for library
    use (``err_console.quiet`` the bars)."""
    console.print(message, soft_wrap=True)
