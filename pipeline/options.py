"""What one `kpipe run` is asked to do (RunOptions).

Reads nothing; written by the CLI (pipeline/cli.py) or from a plan (pipeline/plan.py) and
read by every stage of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunOptions:
    series: str
    tree: Path | None = None
    tree_name: str | None = None  # a tree of configs/trees.toml; None: the default (or --tree)
    base: str | None = None
    base_remote: str | None = None
    revision: int | None = None
    allow_partial: bool = False
    configs: list[str] = field(default_factory=lambda: ["default"])
    fragments: list[str] = field(default_factory=list)
    no_cache: bool = False
    boot: bool = False
    suites: list[str] = field(default_factory=list)
    slow_steps: str = "ends"  # where suites whose steps rule is "ends" run: "ends" | "all"
    jobs: int | None = None
    lore: str | None = None
    argv: list[str] = field(default_factory=list)
    plan: dict | None = None
    shard: int | None = None
    run_dir: Path | None = None
    confirm: int = 1  # re-runs of each deciding failure (0: none)
    sandbox: bool = True  # configure and build inside bubblewrap (pipeline/build/sandbox.py)
    boot_unchanged: bool = False  # boot a step whose objects equal the previous step's too
    overlap: bool = True  # boot step k while step k+1 builds (pipeline/run/booter.py)
    boots: int | None = None  # guests at once while nothing builds; None: booter.default_boots

    @classmethod
    def from_plan(cls, plan: dict, shard: int | None = None, **kw) -> RunOptions:
        """The options a plan fixes (configs, fragments, boot, suites, slow steps, the tree's
        name), plus this machine's."""
        opts = plan["options"]
        return cls(series="", configs=list(opts["configs"]), fragments=list(opts["fragments"]),
                   boot=opts["boot"], suites=list(opts["suites"]),
                   slow_steps=opts.get("slow_steps", "ends"), plan=plan, shard=shard,
                   tree_name=opts.get("tree_name"), **kw)
