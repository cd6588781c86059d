"""`kpipe plan`: freeze a series, its base and configs into a plan split into shards, for a
run spread over machines (run --plan --shard, then merge).

Reads the command line and the series (pipeline/fanout/plan.py makes the plan); writes the
plan file, the shard numbers to $GITHUB_OUTPUT when asked, and a summary (or --json) on stdout.
"""

from __future__ import annotations

import argparse
import json

from pipeline.fanout import plan as planmod
from pipeline.options import RunOptions


def cmd_plan(args: argparse.Namespace, argv: list[str]) -> int:
    req = RunOptions(
        series=args.series, tree=args.tree, tree_name=args.tree_name, base=args.base,
        base_remote=args.base_remote,
        revision=args.revision, allow_partial=args.allow_partial,
        configs=args.configs or ["default"], fragments=args.fragment,
        boot=args.boot is not False, suites=args.suites,
        slow_steps=args.slow_steps or "ends", lore=args.lore)
    plan = planmod.make(req, args.shards)  # its errors end the command (cli._said)
    planmod.write(plan, args.output)
    numbers = [s["n"] for s in plan["shards"]]
    if args.github_output:
        with open(args.github_output, "a") as fh:
            fh.write(f"shards={json.dumps(numbers)}\nid={plan['id']}\n")
    if args.json:
        print(json.dumps({"plan": str(args.output), "id": plan["id"],
                          "shards": plan["shards"]}, indent=1))
        return 0
    print(f"plan {plan['id']}: {plan['series']['subject']} on {plan['base']['commit'][:12]} "
          f"({plan['base']['rule']}), {plan['steps']} steps x {len(plan['configs'])} "
          f"config(s) in {len(numbers)} shard(s): {args.output}")
    for s in plan["shards"]:
        print(f"  shard {s['n']}: " + ", ".join(f"{r['config']} {r['first']}..{r['last']}"
                                                for r in s["ranges"]))
    return 0
