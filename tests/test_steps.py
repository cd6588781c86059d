"""Step reuse keys: every input that changes a step's result changes its key."""

from __future__ import annotations

from pipeline.record import keys as steps


def test_key_depends_on_every_input() -> None:
    extra = {"boot": False, "suites": {}, "config_name": "default"}
    key = steps.step_key("a" * 40, [], "hash1", extra)
    assert key == steps.step_key("a" * 40, [], "hash1", dict(extra))
    assert key != steps.step_key("a" * 40, [], "hash2", extra)  # another config content
    assert key != steps.step_key("b" * 40, [], "hash1", extra)
    assert key != steps.step_key("a" * 40, ["p1"], "hash1", extra)
    assert key != steps.step_key("a" * 40, [], "hash1", {**extra, "boot": True})
    assert key != steps.step_key("a" * 40, [], "hash1", {**extra, "config_name": "kasan"})
    # extra keys never override the config hash
    assert key != steps.step_key("a" * 40, [], "hash2", {**extra, "config_hash": "hash1"})
