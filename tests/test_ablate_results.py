"""What makes an ablated hunk "needed" besides a failing case: a kernel report the tip's own
boot did not have (pipeline/run/ablate.py's _new_splats). Reads and writes nothing."""

from __future__ import annotations

from pipeline.run.ablate import _new_splats

LEAK = {"kind": "kmemleak", "title": "unreferenced object (size 16)", "trace": ""}
ALLOWED = {"kind": "lockdep", "title": "possible circular locking", "trace": "",
           "allowed": "the known configfs report"}
WARN = {"kind": "warning", "title": "WARNING at drivers/vhost/vhost.c:2200", "trace": ""}


def test_a_leak_the_tip_did_not_have_notices_the_hunk() -> None:
    assert _new_splats([LEAK, LEAK], {"splats": []}) == ["splat: kmemleak"]


def test_allow_listed_reports_and_the_tips_own_do_not() -> None:
    assert _new_splats([ALLOWED], {"splats": []}) == []
    assert _new_splats([WARN], {"splats": [WARN]}) == []
    assert _new_splats([WARN, LEAK], {"splats": [WARN]}) == ["splat: kmemleak"]
    assert _new_splats([LEAK], {}) == ["splat: kmemleak"]  # a baseline from before splats
