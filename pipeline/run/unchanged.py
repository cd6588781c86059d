"""Skip what a patch cannot change: a step whose build produced the same objects as the step
before it takes that step's boot, tests and splats instead of booting.

Reads the O= directory just after a step's build (pipeline/run/objects.py), the previous
step's `objects.json` and its entry in the record, the patch's paths and the suites each step
runs; writes the step's `objects.json`, `step["objects"]` (how many outputs were compared and
which differ) and, when it takes the previous step's results, `step["boot"]`, `step["tests"]`
and `step["splats"]` copied from it with `boot.reused_from_step` naming the step that booted.

Equal objects mean equal kernels but for the version string (masked): a patch touching only
comments, documentation or files outside the config. A patch touching how the kernel is built
(configs/unchanged-objects.toml `always_boot`) boots anyway.
"""

from __future__ import annotations

import copy
from pathlib import Path

from pipeline.intake import apply
from pipeline.run import objects

SHOWN = 20  # changed outputs the record lists


def record_objects(step: dict, step_dir: Path, build_dir: Path,
                   in_record: bool = True) -> dict[str, str]:
    """Hash the step's build outputs, keep them beside the step (a later booting run that
    reuses this build compares with them) and return them; `in_record`: say so in the step's
    record too (a run that does not boot compares nothing, and its record stays as it was)."""
    found = objects.manifest(build_dir)
    objects.save(step_dir, found)
    if in_record:
        step["objects"] = {"files": len(found)}
    return found


def _previous(rec: dict, step: dict) -> dict | None:
    return next((s for s in rec["steps"] if s["index"] == step["index"] - 1
                 and s.get("config") == step.get("config")), None)


def same_as_previous(rec: dict, step: dict, found: dict[str, str], run_dir: Path,
                     patch: Path | None) -> bool:
    """Whether this step's objects equal the previous step's and the patch between them does
    not touch a build script (said in `step["objects"]`); the previous step's boot may still
    be under way."""
    before = _previous(rec, step)
    if before is None or patch is None:
        return False
    theirs = objects.load(run_dir / before["dir"])
    if not theirs or not found:  # no vmlinux.a (a kernel before 6.1): nothing to compare
        return False
    changed = objects.differences(theirs, found)
    step["objects"].update(compared_with=before["index"], changed_count=len(changed),
                           changed=changed[:SHOWN])
    if changed:
        return False
    if why := objects.always_boots(apply.touched_files(patch)):
        step["objects"]["always_boot"] = why
        return False
    return True


def previous_if_same(rec: dict, step: dict, found: dict[str, str], run_dir: Path,
                     patch: Path | None, same_suites: bool) -> dict | None:
    """The previous step of the same config whose results this step may take, or None.

    It must have been booted (here or by a step it took from), run the same suites, and have
    the same objects; and the patch between them must not touch a build script."""
    before = _previous(rec, step)
    if before is None or before.get("boot", {}).get("status") in (None, "not-run", "blocked"):
        return None
    if not same_as_previous(rec, step, found, run_dir, patch):
        return None
    return before if same_suites else None


def take_results(step: dict, before: dict) -> None:
    """Give `step` the boot, tests and splats of `before`, saying where they came from."""
    origin = before["boot"].get("reused_from_step", before["index"])
    boot = copy.deepcopy(before["boot"])
    boot["reused_from_step"] = origin
    boot["detail"] = (f"not booted: its objects equal step {before['index']}'s, so step "
                      f"{origin}'s boot and tests stand for it")
    step["boot"] = boot
    step["tests"] = copy.deepcopy(before.get("tests", []))
    step["splats"] = copy.deepcopy(before.get("splats", []))
