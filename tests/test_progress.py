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


def test_a_build_progress_line_names_its_step(capsys: pytest.CaptureFixture[str]) -> None:
    """A boot of step k prints while step k+1 builds: each line says whose it is."""
    p = Progress()
    p.build_units("step 1 [default]")("drivers/vhost/scsi.o", 3)
    err = capsys.readouterr().err
    assert "build step 1 [default]: 3 files compiled, now drivers/vhost/scsi.o" in err, err
