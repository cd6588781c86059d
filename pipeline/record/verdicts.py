"""Verdicts: what the steps of a run say about the series, patch by patch.

Reads the record's steps; returns the verdict list (DESIGN.md) and the run's exit code. Used by
the run and by every renderer, so there is one definition of "fixed by", "regressed at" and
"not bisectable at", and of which failing results decide a verdict (to_confirm: the run
re-runs those on the same kernel before the verdicts are written). A `flaky` case (its attempts
disagreed) is never a regression, never a failing tip: only the `flaky` verdict names it.
"""

from __future__ import annotations

from collections import defaultdict

OK_APPLY = ("applied", "applied-3way", "already-present")
STEPS_RULE = "not-run (steps rule)"  # how a test left out by its suite's steps rule begins
BAD_VERDICTS = ("regressed-at", "broken-at", "not-bisectable-at", "new-warning-at",
                "new-splat-at", "does-not-apply-at", "fails-at-tip", "tip-fails")


def _by_config(steps: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for step in steps:
        out[step.get("config", "default")].append(step)
    for seq in out.values():
        seq.sort(key=lambda s: s["index"])
    return out


def step_ok(step: dict) -> bool:
    """The step applied, built, and booted (or booting was not asked for)."""
    return (step["apply"]["status"] in OK_APPLY and step["build"]["status"] == "pass"
            and step["boot"]["status"] in ("pass", "not-run"))


def step_passes(step: dict) -> bool:
    """step_ok, and no test failed or errored (a flaky one does not count against it)."""
    return step_ok(step) and all(t["status"] in ("pass", "skip", "flaky") for t in step["tests"])


FAILING = ("fail", "error")


def to_confirm(steps: list[dict], tip: int,
               open_ends: frozenset[tuple[str, int]] = frozenset()) -> dict[
        tuple[str, int], set[str]]:
    """(config, step index) -> the failing `suite/case` names there that decide a verdict and
    were not re-run yet: the failing side of a change between two steps that ran the case
    (k-1 and k, or for a slow suite, run by its steps rule at the base and the tip only, the
    nearest steps that ran it), and a failing tip.
    `open_ends` are (config, step) whose neighbour another shard ran: a failing case there is
    taken as deciding, since this shard cannot see the other side."""
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for config, seq in _by_config(steps).items():
        ran: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for step in seq:
            if step_ok(step):
                for test in step["tests"]:
                    if _known(test) is not None:  # a step a steps rule left out is no side
                        ran[f"{test['suite']}/{test['case']}"].append((step["index"], test))
        for name, results in ran.items():
            statuses = [t["status"] for _, t in results]
            for pos, (index, test) in enumerate(results):
                if test["status"] not in FAILING or "attempts" in test:
                    continue
                near = statuses[max(pos - 1, 0):pos] + statuses[pos + 1:pos + 2]
                if index == tip or (config, index) in open_ends or "pass" in near:
                    out[(config, index)].add(name)
    return dict(out)


def judge_attempts(test: dict) -> None:
    """Set a re-run case's status from its attempts: flaky when one passed and one failed."""
    seen = {a["status"] for a in test["attempts"]}
    if "pass" in seen and seen & set(FAILING):
        test["status"], test["flaky"] = "flaky", True


def _verdict(kind: str, config: str, step: int, detail: str, test: str | None = None) -> dict:
    return {"kind": kind, "test": test, "step": step, "config": config, "detail": detail}


def compute(steps: list[dict]) -> list[dict]:
    verdicts: list[dict] = []
    for config, seq in _by_config(steps).items():
        if not seq:
            continue
        verdicts += _apply(config, seq)
        verdicts += _bisectability(config, seq)
        verdicts += _tip(config, seq)
        verdicts += _tests(config, seq)
        verdicts += _warnings(config, seq)
        verdicts += _splats(config, seq)
    return verdicts


def _apply(config: str, seq: list[dict]) -> list[dict]:
    """The first patch that does not apply, with its files and failing hunks."""
    for step in seq:
        entry = step["apply"]
        if entry["status"] == "conflict":
            where = ", ".join(entry.get("files") or []) or "(file unknown)"
            return [_verdict("does-not-apply-at", config, step["index"],
                             f"patch {step['index']} does not apply to {where}: "
                             f"{entry['detail']}")]
    return []


def _tip(config: str, seq: list[dict]) -> list[dict]:
    """A tip that applied but did not build or boot: no other verdict names it."""
    tip = seq[-1]
    if tip["apply"]["status"] not in OK_APPLY or step_ok(tip):
        return []
    what = "build" if tip["build"]["status"] != "pass" else "boot"
    return [_verdict("tip-fails", config, tip["index"],
                     f"the tip (patch {tip['index']}) does not {what} "
                     f"({tip[what]['status']})")]


def _bisectability(config: str, seq: list[dict]) -> list[dict]:
    tip = seq[-1]
    if not step_ok(tip):
        return []
    out = []
    for step in seq[1:-1]:
        if not step_ok(step):
            what = ("apply" if step["apply"]["status"] not in OK_APPLY else
                    "build" if step["build"]["status"] != "pass" else "boot")
            out.append(_verdict("not-bisectable-at", config, step["index"],
                                f"patch {step['index']} does not {what} "
                                f"({step[what]['status']}) while the tip does"))
    return out


def _known(test: dict | None) -> str | None:
    """A test's status, or None where it has none to go by: missing, or left out by its
    suite's steps rule."""
    if test is None or (test["status"] == "not-run"
                        and str(test.get("message", "")).startswith(STEPS_RULE)):
        return None
    return test["status"]


def _where(indexes: list[int], known: list[tuple[int, str]], j: int) -> tuple[int, int]:
    """The steps a change at known[j] lies within: from just after the previous known step
    to this one (one step when none between was left out)."""
    return indexes[known[j - 1][0] + 1], indexes[known[j][0]]


def _change(kind: str, config: str, name: str, span: tuple[int, int], what: str) -> dict:
    lo, hi = span
    if lo == hi:
        return _verdict(kind, config, hi, what.replace("{at}", f"patch {hi}"), name)
    out = _verdict(kind, config, hi, what.replace("{at}", f"within patches {lo}\u2013{hi}")
                   + " (the steps between were not run: steps rule)", name)
    out["range"] = [lo, hi]
    return out


def _tests(config: str, seq: list[dict]) -> list[dict]:
    results: dict[str, dict[int, dict]] = defaultdict(dict)
    for step in seq:
        for test in step["tests"]:
            results[f"{test['suite']}/{test['case']}"][step["index"]] = test
    out = []
    indexes = [s["index"] for s in seq]
    for name, by_step in sorted(results.items()):
        statuses = [_known(by_step.get(i)) for i in indexes]
        known = [(pos, st) for pos, st in enumerate(statuses) if st is not None]
        for i, test in by_step.items():
            if test.get("flaky"):
                out.append(_verdict("flaky", config, i,
                                    f"{name} changed result on a retry at step {i}", name))
        base = statuses[0]
        tip = statuses[-1]
        if tip in ("fail", "error") and not (base == "pass" and tip == "fail"):
            out.append(_verdict("fails-at-tip", config, indexes[-1],
                                f"{name} ends {tip} at the tip (patch {indexes[-1]}); at the "
                                f"base it was {base or 'not run'}", name))
        if base == "fail":
            for j in range(1, len(known)):
                if all(st == "pass" for _, st in known[j:]) and known[j - 1][1] != "pass":
                    out.append(_change("fixed-by", config, name, _where(indexes, known, j),
                                       f"{name} fails at the base and passes from {{at}} on"
                                       if known[j][0] == known[j - 1][0] + 1 else
                                       f"{name} fails at the base and is fixed {{at}}"))
                    break
        elif base == "pass":
            for j in range(1, len(known)):
                if known[j][1] == "fail":
                    kind = "regressed-at" if known[-1][1] == "fail" else "broken-at"
                    after = " and after" if kind == "regressed-at" else ""
                    out.append(_change(kind, config, name, _where(indexes, known, j),
                                       f"{name} passes at the base and fails at {{at}}{after}"
                                       if known[j][0] == known[j - 1][0] + 1 else
                                       f"{name} passes at the base and breaks {{at}}"))
                    break
    return out


def _warnings(config: str, seq: list[dict]) -> list[dict]:
    out = []
    for step in seq[1:]:
        new = step["build"].get("warnings_new") or []
        if new:
            first = new[0]
            out.append(_verdict("new-warning-at", config, step["index"],
                                f"{len(new)} new warning(s), first: {first['file']}:"
                                f"{first['line']}: {first['message']}"))
    return out


def _splats(config: str, seq: list[dict]) -> list[dict]:
    seen: set[tuple[str, str]] = set()
    out = []
    for step in seq:
        for splat in step["splats"]:
            key = (splat["kind"], splat["title"])
            if key in seen:
                continue
            seen.add(key)
            if step["index"] > 0:
                out.append(_verdict("new-splat-at", config, step["index"],
                                    f"{splat['kind']}: {splat['title']}", splat.get("test")))
    return out


def exit_code(record: dict) -> int:
    """0: complete, no bad verdict, tip passes; 1: a bad verdict or a failing tip."""
    if any(v["kind"] in BAD_VERDICTS for v in record["verdicts"]):
        return 1
    for seq in _by_config(record["steps"]).values():
        if seq and not step_passes(seq[-1]):
            return 1
    return 0
