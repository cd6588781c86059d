"""Export a run to KernelCI's KCIDB I/O format (schema 5.3): checkouts, builds, tests.

Reads a record; returns the KCIDB document (a dict; `validate` checks it with kcidb-io's own
validator when kcidb-io is installed). One checkout per step (the base plus patches 1..k, with
the patch's Message-ID), one build per step and config, and per build a `boot` test and one
test per guest test case (path `suite.case`). Paths in `misc` are relative to the run dir;
no URL is made up for them.
"""

from __future__ import annotations

import re

from pipeline.report import model
from pipeline.report.text import clean, one_line, tail_lines

ORIGIN = "kpipe"
MAJOR, MINOR = 5, 3
EXCERPT_MAX = 16384
STATUS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP", "blocked": "SKIP",
          "not-run": "MISS"}
_PATH_BAD = re.compile(r"[^a-zA-Z0-9_-]+")


def _path(*parts: str) -> str:
    return ".".join(_PATH_BAD.sub("_", p).strip("_") or "_" for p in parts)


def _excerpt(text: str) -> str:
    return tail_lines(text, 200)[-EXCERPT_MAX:]


def _patch(rec: dict, index: int) -> dict | None:
    return next((p for p in (rec.get("series") or {}).get("patches", []) if p["n"] == index),
                None)


def _checkout(rec: dict, step: dict) -> dict:
    k = step["index"]
    out = {"id": f"{ORIGIN}:{rec['run_id']}:s{k}", "origin": ORIGIN,
           "start_time": rec["created"],
           "valid": step["apply"]["status"] in ("applied", "applied-3way", "already-present"),
           "comment": clean(model.patch_subject(rec, k) if k else "base"),
           "misc": {"run_id": rec["run_id"], "step": k, "patches_applied": k,
                    "apply_status": step["apply"]["status"], "commit": step.get("commit")}}
    base = rec.get("base")
    if base:
        out["git_commit_hash"] = base["commit"]
        out["tree_name"] = clean(base["tree"]["describe"])
    msgid = (_patch(rec, k) or {}).get("msgid")  # the base checkout has no patch message
    if msgid and "@" in msgid:
        out["message_id"] = clean(msgid)
    return out


def _build(rec: dict, step: dict, checkout_id: str) -> dict:
    build = step["build"]
    config = step.get("config", "default")
    out = {"id": f"{ORIGIN}:{rec['run_id']}:{config}:s{step['index']}",
           "checkout_id": checkout_id, "origin": ORIGIN, "start_time": rec["created"],
           "architecture": "x86_64", "config_name": config,
           "status": STATUS[build["status"]],
           "misc": {"log": build.get("log"), "warnings_new": build.get("warnings_new") or [],
                    "reused_from": step.get("reused_from")}}
    if build.get("seconds") is not None:
        out["duration"] = float(build["seconds"])
    if build.get("command"):
        out["command"] = clean(build["command"])
    if rec["host"].get("compiler"):
        out["compiler"] = clean(rec["host"]["compiler"])
    errors = build.get("errors") or []
    if errors:
        out["log_excerpt"] = _excerpt("\n".join(e.get("context") or e.get("message", "")
                                                for e in errors))
    return out


def _tests(rec: dict, step: dict, build_id: str) -> list[dict]:
    boot = step["boot"]
    if boot["status"] in ("blocked", "not-run") and not step["tests"]:
        return []
    env = {"comment": f"QEMU ({boot.get('accel') or rec['host'].get('accel') or 'unknown'})"}
    out = [{"id": f"{build_id}:boot", "build_id": build_id, "origin": ORIGIN, "path": "boot",
            "status": STATUS[boot["status"]], "environment": env,
            "start_time": rec["created"], "comment": one_line(boot.get("detail", "")),
            "misc": {"console": boot.get("console"),
                     "splats": [f"{s['kind']}: {s['title']}" for s in step["splats"]]}}]
    if boot.get("seconds") is not None:
        out[0]["duration"] = float(boot["seconds"])
    for test in step["tests"]:
        path = _path(test["suite"], test["case"])
        entry = {"id": f"{build_id}:{path}", "build_id": build_id, "origin": ORIGIN,
                 "path": path, "status": STATUS[test["status"]], "environment": env,
                 "start_time": rec["created"], "misc": {"log": test.get("log")}}
        if test.get("seconds") is not None:
            entry["duration"] = float(test["seconds"])
        if test.get("message"):
            entry["log_excerpt"] = _excerpt(test["message"])
        out.append(entry)
    return out


def export(rec: dict) -> dict:
    doc: dict = {"version": {"major": MAJOR, "minor": MINOR}, "checkouts": [], "builds": [],
                 "tests": []}
    checkouts: dict[int, str] = {}
    for step in rec["steps"]:
        k = step["index"]
        if k not in checkouts:
            checkout = _checkout(rec, step)
            checkouts[k] = checkout["id"]
            doc["checkouts"].append(checkout)
        build = _build(rec, step, checkouts[k])
        doc["builds"].append(build)
        doc["tests"] += _tests(rec, step, build["id"])
    return doc


def validate(doc: dict) -> None:
    """Raise jsonschema's ValidationError unless kcidb-io's schema 5.3 accepts `doc`."""
    from kcidb_io.schema import V5_3

    V5_3.validate_exactly(doc)
