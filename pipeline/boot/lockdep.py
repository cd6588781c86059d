"""What lockdep checked in one boot: from which point it was off, why, and which cases ran
without it.

Lockdep turns itself off (`debug_locks` 0) after its first report, allowed or not, so a step
with "no splat" may have run most of its cases unchecked. Reads the guest runner's events
(each carries `debug_locks` from /proc/lockdep_stats, see virtme-tests/runner.py), the step's
.config and the splats found in its kernel log; writes nothing: the result is the boot
record's `lockdep` (docs/record.md).
"""

from __future__ import annotations

from pipeline.boot.splats import Splat

Window = tuple[str, str, int]


def _where(events: list[dict], i: int, names: dict[Window, str]) -> str:
    """Where lockdep went off: between event i-1 (still on) and event i (off)."""
    e = events[i]
    kind = e.get("event")
    if kind == "runner-start":
        return "boot, before the guest runner started"
    suite = e.get("suite", "?")
    if kind == "program-start":
        return f"between programs, before {suite}/{e.get('program', '?')}"
    if kind == "case-start" and e.get("case") == 1:
        return f"{suite} set-up, before its first case"
    if kind == "case-start":   # went off after case n-1 printed its result
        key = (suite, e.get("program", ""), int(e["case"]) - 1)
        return names.get(key, f"{suite} case {key[2]}")
    if kind == "case-end":
        key = (suite, e.get("program", ""), int(e["case"]))
        return names.get(key, f"{suite} case {key[2]}")
    return f"{suite}, after its last case"


def coverage(kconfig: dict[str, str], events: list[dict], found: list[Splat],
             names: dict[Window, str]) -> dict:
    """The boot record's `lockdep`: built, known, off_from, reason, checked, unchecked."""
    out: dict = {"built": kconfig.get("CONFIG_PROVE_LOCKING") == "y", "known": False,
                 "off_from": None, "reason": None, "checked": [], "unchecked": []}
    if not out["built"]:
        out["detail"] = "CONFIG_PROVE_LOCKING is not set: no case was checked by lockdep"
        return out
    states = [e for e in events if e.get("debug_locks") is not None]
    if not states:
        out["detail"] = "the guest did not report lockdep's state (/proc/lockdep_stats)"
        return out
    out["known"] = True
    off = next((i for i, e in enumerate(states) if e["debug_locks"] == 0), None)
    if off is not None:
        out["off_from"] = _where(states, off, names)
        first = next((s for s in found if s.kind == "lockdep"), None)
        if first is not None:
            out["reason"] = {"title": first.title, "allowed": first.allowed,
                             "test": names.get(first.window) if first.window else None}
    on_at_start: dict[Window, bool] = {}
    ended: set[Window] = set()
    for e in states:
        if e.get("event") not in ("case-start", "case-end"):
            continue
        key = (e.get("suite", ""), e.get("program", ""), int(e.get("case", 0)))
        name = names.get(key)
        if name is None:
            continue
        if e["event"] == "case-start":
            on_at_start[key] = e["debug_locks"] == 1
            continue
        ended.add(key)
        if on_at_start.get(key, False) and e["debug_locks"] == 1:
            out["checked"].append(name)
        else:
            out["unchecked"].append(name)
    # a case that never ended (the guest died, the program hung) was not seen checked
    out["unchecked"] += [names[k] for k in on_at_start if k not in ended and k in names]
    if off is None:
        out["detail"] = "lockdep was on from boot to the end of the last case"
    else:
        why = out["reason"]
        because = (f"after its report '{why['title']}'"
                   + (" (allow-listed)" if why["allowed"] else "")) if why else \
            "with no lockdep report in the kernel log"
        out["detail"] = (f"lockdep off from {out['off_from']}, {because}: "
                         f"{len(out['unchecked'])} cases ran without it")
    return out
