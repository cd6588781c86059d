"""Guest test suites: definitions, prerequisites and the run's choice of suites.

Reads `virtme-tests/<suite>/suite.toml` (name, description, requires = ["CONFIG_..."] that must
be `=y`, one or more [[program]] tables with `path` relative to the suite directory and
`timeout` in seconds; optional `memory_mb`, the guest memory the suite needs, `udev = true`
for a suite that needs udev and systemd-tmpfiles in the guest (off otherwise: they cost
seconds at every boot),
`steps`, "all" (the default) or "ends": a slow suite that runs at the base and the tip only
unless the run says `--slow-steps all`, and `l2_kernel`, the name of a configs/kconfig/
fragment: the suite boots a guest of its own and the host builds that kernel for it,
pipeline/boot/l2kernel.py), a step's `.config`, and `configs/suites.txt` (one
suite name per line, `#` comments). A suite named with a `/` is a path to a suite folder
anywhere (the tests keep their test-only suites under tests/suites/). Writes nothing.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import paths
from pipeline.build import kconfig
from pipeline.errors import BadInput


class SuiteError(BadInput):
    """A suite definition or the suite list is missing or malformed."""


@dataclass
class Program:
    path: Path  # absolute
    rel: str  # as written in suite.toml
    timeout: float


@dataclass
class Suite:
    name: str
    description: str
    directory: Path
    requires: list[str] = field(default_factory=list)
    programs: list[Program] = field(default_factory=list)
    memory_mb: int | None = None  # guest memory the suite needs (None: the run's default)
    steps: str = "all"  # "all" | "ends" (base and tip only, unless --slow-steps all)
    udev: bool = False  # the suite needs udev running in the guest
    l2_kernel: str | None = None  # fragment of the L2 kernel the host builds for the suite


STEPS_RULES = ("all", "ends")
SLOW_STEPS = ("ends", "all")  # --slow-steps: where suites with steps = "ends" run


def suite_dir(name: str, root: Path | None = None) -> Path:
    """Where suite `name` lives: virtme-tests/<name>/ (or root/<name>), or the folder it names
    when it holds a `/`."""
    if "/" in name:
        return Path(name).resolve()
    return (root or paths.VIRTME_TESTS_DIR) / name


def load_suite(name: str, root: Path | None = None) -> Suite:
    """Load and validate virtme-tests/<name>/suite.toml (or <name>/suite.toml for a path)."""
    directory = suite_dir(name, root)
    toml_path = directory / "suite.toml"
    name = directory.name if "/" in name else name
    if not toml_path.is_file():
        raise SuiteError(f"suite {name!r}: {toml_path} not found")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {name!r}: {toml_path}: {exc}") from exc
    if data.get("name") != name:
        raise SuiteError(f"suite {name!r}: name in {toml_path} is {data.get('name')!r}")
    requires = data.get("requires", [])
    if not isinstance(requires, list) or not all(
        isinstance(r, str) and r.startswith("CONFIG_") for r in requires
    ):
        raise SuiteError(f"suite {name!r}: requires must be a list of CONFIG_ symbols")
    programs = []
    for entry in data.get("program", []):
        rel = entry.get("path")
        timeout = entry.get("timeout")
        if not isinstance(rel, str) or not isinstance(timeout, int | float) or timeout <= 0:
            raise SuiteError(f"suite {name!r}: each [[program]] needs path and timeout > 0")
        path = (directory / rel).resolve()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise SuiteError(f"suite {name!r}: program {rel} is missing or not executable")
        programs.append(Program(path, rel, float(timeout)))
    if not programs:
        raise SuiteError(f"suite {name!r}: no [[program]] in {toml_path}")
    memory = data.get("memory_mb")
    if memory is not None and (not isinstance(memory, int) or memory < 128):
        raise SuiteError(f"suite {name!r}: memory_mb must be an integer of at least 128")
    steps = data.get("steps", "all")
    if steps not in STEPS_RULES:
        raise SuiteError(f"suite {name!r}: steps must be one of {', '.join(STEPS_RULES)}")
    udev = data.get("udev", False)
    if not isinstance(udev, bool):
        raise SuiteError(f"suite {name!r}: udev must be true or false")
    l2 = data.get("l2_kernel")
    if l2 is not None and (not isinstance(l2, str) or not re.fullmatch(r"[\w.-]+", l2)):
        raise SuiteError(f"suite {name!r}: l2_kernel must name a fragment of configs/kconfig/")
    return Suite(name, str(data.get("description", "")), directory, list(requires), programs,
                 memory, steps, udev, l2)


def runs_at(suite: Suite, index: int, tip: int, slow_steps: str = "ends") -> bool:
    """Whether the suite's `steps` rule lets it run at step `index` of a walk ending at `tip`."""
    return suite.steps == "all" or slow_steps == "all" or index in (0, tip)


def steps_rule_message(suite: Suite) -> str:
    """What a test record says at a step the suite's steps rule leaves out."""
    return (f"not-run (steps rule): suite {suite.name} runs at the base and the tip only "
            f"(--slow-steps all runs it at every step)")


def guest_memory(suites: list[Suite], default_mb: int) -> int:
    """The guest memory a boot running `suites` needs: the largest any of them asks for."""
    return max([default_mb, *(s.memory_mb for s in suites if s.memory_mb)])


def read_kconfig(path: Path) -> dict[str, str]:
    """Symbols of a .config: {CONFIG_X: value}, unset ones as 'n'."""
    if not path.is_file():
        raise SuiteError(f"kernel config {path} not found")
    return {f"CONFIG_{sym}": value for sym, value in kconfig.read_config(path).items()}


def missing_requirements(suite: Suite, kconfig: dict[str, str]) -> list[str]:
    """The suite's required symbols that are not =y in the config, with their value."""
    return [f"{sym}={kconfig.get(sym, 'n')}" for sym in suite.requires if kconfig.get(sym) != "y"]


def chosen_suites(list_file: Path | None = None) -> list[str]:
    """Suite names from configs/suites.txt (one per line, '#' starts a comment)."""
    path = list_file or paths.CONFIGS_DIR / "suites.txt"
    if not path.is_file():
        raise SuiteError(f"suite list {path} not found")
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    if not names:
        raise SuiteError(f"suite list {path} names no suite")
    return names


def for_run(boot: bool, given: list[str]) -> list[str]:
    """The suites a run's guests run: none without boot, else the given ones or configs/."""
    if not boot:
        return []
    return given or chosen_suites()
