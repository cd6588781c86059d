"""Write one of tests/series_factory.py's series to a folder, for the runs behind the records.

Reads the imported kernel tree (~/.cache/kpipe/tree.git); writes `git format-patch` files to
OUT. Usage (from the project root): python tests/golden/records/make_series.py KIND OUT
with KIND one of mixed, hostile, rev1, rev2, maintainer (which also prints the --base to
pass). Each record's COMMAND file says how it was used.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import series_factory as sf  # noqa: E402

from pipeline.intake import tree  # noqa: E402


def main(kind: str, out: str) -> None:
    info = tree.open_tree()
    target = Path(out).resolve()
    makers = {
        "mixed": lambda: sf.mixed_series(info.path, info.head, target),
        "hostile": lambda: sf.hostile_subject_series(info.path, info.head, target),
        "rev1": lambda: sf.two_revisions_series(info.path, info.head, target, 1),
        "rev2": lambda: sf.two_revisions_series(info.path, info.head, target, 2),
        "maintainer": lambda: sf.maintainer_series(info.path, info.head, target),
    }
    print(makers[kind]())


if __name__ == "__main__":
    main(*sys.argv[1:])
