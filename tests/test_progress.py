"""Progress output: text from mails, logs and compilers prints as it is (rich markup escaped)."""

from __future__ import annotations

import pytest

from pipeline.progress import Progress


def test_brackets_in_messages_are_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    p = Progress()
    p.info("step 0 [default]: reused")
    p.warn("scsi.c:12: warning: unused variable 'x' [-Wunused-variable]")
    p.error("patch [PATCH 2/3] [/] did not apply")
    p.stage("series", "reading [bold]x[/bold]")
    err = capsys.readouterr().err
    for text in ("step 0 [default]: reused", "[-Wunused-variable]", "[PATCH 2/3] [/]",
                 "reading [bold]x[/bold]"):
        assert text in err, err
