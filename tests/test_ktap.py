"""KTAP parser: results, directives, diagnostics, and incomplete output."""

from pipeline.boot import ktap

SAMPLE = """\
KTAP version 1
1..7
# checking uname
ok 1 uname_localversion
# open failed
# errno 2
not ok 2 vhost_scsi_open # open /dev/vhost-scsi: No such file or directory
ok 3 lio_configfs # SKIP configfs not built
    KTAP version 1
    1..1
    ok 1 sub
not ok 4 - with_subtest # TODO not done yet
not ok 5 qemu_start # error: QMP connect failed
ok 6 error_words # errors: none
not ok 7 ring_read # Error reading the used ring: 2 of 4 entries
"""


def test_statuses_messages_and_logs():
    p = ktap.parse(SAMPLE)
    assert p.version == 1 and p.plan == 7 and p.complete and not p.errors
    assert [(c.number, c.name, c.status) for c in p.cases] == [
        (1, "uname_localversion", "pass"),
        (2, "vhost_scsi_open", "fail"),
        (3, "lio_configfs", "skip"),
        (4, "with_subtest", "pass"),
        (5, "qemu_start", "error"),
        (6, "error_words", "pass"),
        (7, "ring_read", "fail"),
    ]
    assert p.cases[0].log == ["# checking uname"]
    assert p.cases[1].message == "open /dev/vhost-scsi: No such file or directory"
    assert p.cases[1].log == ["# open failed", "# errno 2"]
    assert p.cases[2].message == "configfs not built"
    assert p.cases[3].message == "TODO: not done yet"
    assert p.cases[4].message == "QMP connect failed"  # kselftest's `# error`: not the kernel's
    assert p.cases[5].message == "errors: none"
    # a free-text reason that starts with "Error": kselftest's directive is lower case
    assert p.cases[6].message == "Error reading the used ring: 2 of 4 entries"
    assert "    ok 1 sub" in p.cases[3].log  # nested subtests stay in the parent's log


def test_no_plan_is_an_error():
    p = ktap.parse("KTAP version 1\nok 1 a\n")
    assert not p.complete
    assert any("no plan" in e for e in p.errors)


def test_empty_output_is_an_error():
    p = ktap.parse("")
    assert not p.complete and p.plan is None and p.cases == []


def test_fewer_results_than_plan():
    p = ktap.parse("KTAP version 1\n1..3\nok 1 a\n# working on b\n")
    assert not p.complete
    assert p.errors == ["plan says 3 cases, 1 reported"]
    assert p.trailing == ["# working on b"]


def test_bail_out_and_duplicate_numbers():
    p = ktap.parse("KTAP version 1\n1..2\nok 1 a\nok 1 a\nBail out! device gone\n")
    assert p.bail_out == "device gone"
    assert "case number 1 reported twice" in p.errors
    assert not p.complete


def test_not_ok_is_fail_even_with_skip_like_name():
    p = ktap.parse("1..1\nnot ok 1 skip_me\n")
    assert p.cases[0].status == "fail" and p.complete


def test_plan_zero_with_skip():
    p = ktap.parse("KTAP version 1\n1..0 # SKIP no device\n")
    assert p.plan == 0 and p.plan_comment == "SKIP no device" and p.cases == []
