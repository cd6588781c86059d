"""What the user sees while a run goes: stages, the build's progress, warnings and errors.

Reads nothing; writes to stderr through rich (stdout is kept for --json). Long stages show
which step and which file they are on; failures say which patch, which stage, and where the log
is. Text from mails, logs and compilers is escaped, so `[default]` or `[-Wunused]` print as
they are, not as markup.

A run prints from two threads (its boot worker boots step k while step k+1 builds:
pipeline/run/booter.py), so every line of a step names the step and its stage ("build step 1
[default]: 120 files compiled", "boot step 0 [default]: booting ..."); rich prints each line
whole, under its console's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        # soft_wrap: long paths and messages stay on one line in logs and CI output
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self._last = 0.0
        self._label = ""

    def stage(self, name: str, text: str) -> None:
        self._label = f"{name}: {text}"
        if not self.quiet:
            self.console.print(f"[bold cyan]{name:>7}[/] {escape(text)}")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"        {escape(text)}")

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning[/] {escape(text)}")

    def error(self, text: str) -> None:
        self.console.print(f"[bold red]  error[/] {escape(text)}")

    def build_unit(self, unit: str, count: int, label: str = "") -> None:
        """Called per compiled file; prints at most every 5 s so logs stay small. `label`
        names the build ("step 1 [default]")."""
        now = time.monotonic()
        if self.quiet or now - self._last < 5:
            return
        self._last = now
        said = f"build {label}: " if label else ""
        self.console.print(f"        {escape(said)}{count} files compiled, now {escape(unit)}")

    def build_units(self, label: str) -> Callable[[str, int], None]:
        """build_unit for the build `label` names: make's progress callback."""
        return lambda unit, count: self.build_unit(unit, count, label)

    def build_done(self, k: int, build: dict) -> None:
        status = build["status"]
        colour = {"pass": "green", "fail": "red"}.get(status, "yellow")
        line = (f"        step {k}: build [{colour}]{status}[/] in {build.get('seconds')} s, "
                f"{build.get('units_rebuilt', 0)} files rebuilt")
        if build.get("warnings_new"):
            line += f", [yellow]{len(build['warnings_new'])} new warning(s)[/]"
        self.console.print(line)
        if status != "pass":
            first = (build.get("errors") or [{}])[0].get("message", "")
            self.error(f"step {k} build {status}: {first} (log: {build.get('log')})")

    def boot_done(self, k: int, boot: dict, tests: list[dict], failed: list[dict]) -> None:
        colour = {"pass": "green", "fail": "red"}.get(boot["status"], "yellow")
        self.console.print(f"        step {k}: boot [{colour}]{boot['status']}[/] "
                           f"({boot.get('accel')}, {boot.get('seconds')} s), "
                           f"{len(tests) - len(failed)}/{len(tests)} cases pass")
        for test in failed:
            self.error(f"step {k} {test['suite']}/{test['case']} {test['status']}: "
                       f"{test.get('message', '')} (log: {test.get('log')})")
        if boot["status"] != "pass":
            self.error(f"step {k} boot {boot['status']}: {boot.get('detail', '')} "
                       f"(console: {boot.get('console')})")
