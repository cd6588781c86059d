"""Every error class of pipeline/ is a BadInput (exit 2) or an InfraError (exit 3), and one map
turns an exception into an exit code. Reads pipeline/'s modules; writes nothing."""

from __future__ import annotations

import errno
import importlib
import inspect
from pathlib import Path

from pipeline import errors

ROOT = Path(__file__).resolve().parents[1]


def test_every_error_class_derives_from_one_of_the_two():
    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name != "pipeline.errors" and issubclass(cls, Exception):
                found.append(cls)
                assert issubclass(cls, errors.BadInput | errors.InfraError), \
                    f"{name}.{cls_name} derives from neither BadInput nor InfraError"
    assert len(found) >= 12  # the stages' own errors, not an empty walk


def test_the_map_of_exceptions_to_exit_codes():
    from pipeline.intake.series import SeriesError
    from pipeline.intake.tree import TreeError

    assert errors.failure(SeriesError("no such series")) == (2, "bad-input", "no such series")
    assert errors.failure(TreeError("no tree")).code == 3
    assert errors.failure(FileNotFoundError(2, "nope", "make")).message == \
        "tool or file missing: make"
    assert errors.failure(OSError(errno.ENOSPC, "No space left")).code == 3
    assert errors.failure(OSError(errno.EACCES, "denied")) is None
    assert errors.failure(KeyboardInterrupt()).code == 130
    assert errors.failure(ValueError("a bug")) is None
