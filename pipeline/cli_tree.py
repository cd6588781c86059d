"""`kpipe tree`: import a kernel tree of configs/trees.toml into the cache, print its
repository (--where), or list the known trees and what is imported of them (--list).

Reads configs/trees.toml and the cache's tree repositories (pipeline/intake/trees.py,
tree.py); writes the imported repository (through tree.open_tree) and stdout.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from pipeline.errors import BadInput
from pipeline.intake import tree, trees


def _tree_data(info: tree.TreeInfo) -> dict:
    return {"name": info.name, "path": str(info.path), "commit": info.head,
            "describe": info.describe, "version": info.version, "source": info.source}


def cmd_tree(args: argparse.Namespace, argv: list[str]) -> int:
    """`kpipe tree`: import a named tree (or a tarball), print where it is, or list them.
    Bad arguments and failed imports raise (the CLI turns them into their exit code)."""
    if args.list:
        if args.name or args.tarball:
            raise BadInput("--list imports nothing: drop NAME and --tarball")
        return _list_trees(args.json)
    if args.name and args.tarball:
        raise BadInput("give a tree NAME or --tarball, not both")
    if args.where:
        trees.importable(args.name or trees.default_name())
        print(trees.repo_dir(args.name or trees.default_name()))
        return 0
    info = tree.open_tree(None, args.tarball, args.name)
    print(json.dumps(_tree_data(info), indent=1) if args.json else
          f"{info.name}: Linux {info.version}, {info.head} {info.describe} ({info.path})")
    return 0


def _list_trees(as_json: bool) -> int:
    rows = trees_listing()
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    table = Table(title="kernel trees (configs/trees.toml)")
    for col in ("name", "source", "imported", "description"):
        table.add_column(col)
    for r in rows:
        got = r["imported"]
        table.add_row(r["name"] + (" (default)" if r["default"] else ""), r["source"],
                      f"Linux {got['version']} {got['commit'][:12]}" if got else
                      ("no: `kpipe tree " + r["name"] + "`" if r["importable"] else "remote"),
                      r["description"])
    Console(width=160).print(table)
    return 0


def trees_listing() -> list[dict]:
    """Every tree of configs/trees.toml: its source, and what is imported of it."""
    default = trees.default_name()
    rows = []
    for name, entry in trees.known_trees().items():
        can = entry.get("source") in trees.IMPORTABLE
        got = tree.imported(name) if can else None
        rows.append({"name": name, "source": entry.get("source"), "default": name == default,
                     "importable": can, "description": entry.get("description", ""),
                     "imported": _tree_data(got) if got else None})
    return rows
