#!/usr/bin/env python3
"""Record the golden kernel-log corpus for tests/test_splats.py (real kernel output).

Reads the base kernel (/work/scratch/kernels/base) and the LKDTM kernel
(/work/scratch/boot/build-lkdtm, built from the base .config plus configs/kconfig/lkdtm.config);
boots each sample's scenario through pipeline.bootstep (so the logs carry the runner's case
markers) and writes, per sample, <sample>.log (the guest's dmesg.txt when the runner finished,
else the console), <sample>.command.txt (the vng command line and the guest program) and, with
--draft, a draft <sample>.expected.json from the current scanner, to be checked by hand.

Usage: .venv/bin/python tests/golden/dmesg/record.py [--draft] [SAMPLE ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for make_suite

from test_boot_lkdtm import make_suite  # noqa: E402

from pipeline.boot import splats  # noqa: E402
from pipeline.boot.step import boot_and_test  # noqa: E402
from pipeline.boot.vng import BootSettings  # noqa: E402
from pipeline.paths import VIRTME_TESTS_DIR  # noqa: E402

BASE = Path("/work/scratch/kernels/base")
LKDTM = Path("/work/scratch/boot/build-lkdtm")
KERNELS = {
    "base": (BASE / "bzImage", BASE / "System.map", BASE / ".config", "-kpipe-base"),
    "lkdtm": (LKDTM / "arch/x86/boot/bzImage", LKDTM / "System.map", LKDTM / ".config",
              "-lkdtm"),
}
# sample: (kernel, LKDTM crash types provoked one suite after the other in one boot (none: a
# clean smoke run), shell run before provoking, program timeout). The guest survives everything
# in "survivable" (the Oopses come last: an Oops kills only the writing shell).
SAMPLES = {
    "clean-lkdtm": ("lkdtm", [], "", 30),
    "survivable": ("lkdtm", ["WARNING", "HUNG_TASK", "BUG", "EXCEPTION"], "", 35),
    # SPINLOCKUP returns to user space holding a spinlock (a lockdep report), then the guest
    # is wedged for good by SOFTLOCKUP and killed at the run timeout
    "lockup": ("lkdtm", ["SPINLOCKUP", "SOFTLOCKUP"],
               "echo 1 > /proc/sys/kernel/watchdog_thresh", 10),
    "panic": ("lkdtm", ["PANIC"], "", 30),
}


def record(sample: str, draft: bool) -> None:
    kernel, crashes, pre, timeout = SAMPLES[sample]
    bz, smap, cfg, lv = KERNELS[kernel]
    with tempfile.TemporaryDirectory(prefix=f"kpipe-golden-{sample}-") as tmp:
        root = Path(tmp) / "suites"
        root.mkdir()
        if crashes:
            names = [make_suite(root, c, pre=pre, timeout=timeout) for c in crashes]
            program = "".join(f"# --- suite {n}: provoke.sh\n" + (root / n / "provoke.sh")
                              .read_text() for n in names)
        else:
            (root / "smoke").symlink_to(VIRTME_TESTS_DIR / "smoke")
            names, program = ["smoke"], "virtme-tests/smoke/smoke.py (see the repository)\n"
        out = Path(tmp) / "out"
        res = boot_and_test(bz, smap, cfg, lv, names, out,
                            BootSettings(run_margin=20.0 if crashes else 60.0),
                            suites_root=root)
        n = len(res["boot"]["attempts"])
        dmesg = out / f"guest-{n}" / "dmesg.txt"
        src = dmesg if dmesg.is_file() else out / f"console-{n}.log"
        shutil.copy(src, HERE / f"{sample}.log")
        (HERE / f"{sample}.command.txt").write_text(
            f"# kernel: {kernel} ({bz}); sample taken from {src.name}; boot: "
            f"{res['boot']['status']} ({res['boot']['detail']})\n"
            f"{res['boot']['command']}\n# guest programs, in order:\n{program}")
    if draft:
        found = splats.scan((HERE / f"{sample}.log").read_text(errors="replace"),
                            splats.load_patterns())
        exp = {"source": src.name, "splats": [
            {"kind": s.kind, "title": s.title, "window": list(s.window) if s.window else None,
             "allowed": bool(s.allowed), "trace_contains": []} for s in found]}
        (HERE / f"{sample}.expected.json").write_text(json.dumps(exp, indent=1) + "\n")
    print(f"{sample}: {src.name} -> {sample}.log; boot {res['boot']['status']}")


README_HEAD = """\
# Golden kernel logs for the splat scanner

Real kernel output, each `<sample>.log` with `<sample>.expected.json`: the splats
`tests/test_splats.py` requires the scanner to find in it (kind, title, the case window it fell
in, whether the allow list allows it, and lines its trace must contain). `clean-*` samples must
yield no splat. The LKDTM samples were produced by `tests/golden/dmesg/record.py <sample>`,
which boots the kernel through `pipeline.bootstep` (so the log carries the guest runner's
`kpipe: case ...` markers) and copies the guest's `dmesg.txt` (or the console when the guest
died or hung); `clean-base` and `clean-base-console` are the dmesg and console of boot 1 of
the flake loop (same `bootstep` path, smoke suite). The `.expected.json` files were drafted
with `record.py --draft` and then checked by hand against the logs.

Kernels: `base` is the lead's base build, /work/scratch/kernels/base (6.12.117-kpipe-s0:
vhost-scsi, lockdep, kmemleak). `lkdtm` is that .config plus `configs/kconfig/lkdtm.config`:

```
git -C ~/.cache/kpipe/tree.git worktree add --detach /work/scratch/boot/linux main
cd /work/scratch/boot/linux && mkdir o-lkdtm && cp /work/scratch/kernels/base/.config o-lkdtm/
scripts/kconfig/merge_config.sh -m -O o-lkdtm o-lkdtm/.config \\
    /work/main/configs/kconfig/lkdtm.config && make O=o-lkdtm olddefconfig
CCACHE_DIR=~/.cache/kpipe/ccache CCACHE_BASEDIR=/work/scratch/boot/linux CCACHE_NOHASHDIR=1 \\
    nice -n 10 make -s -j2 O=/work/scratch/boot/linux/o-lkdtm CC="ccache gcc" \\
    LOCALVERSION=-lkdtm KBUILD_BUILD_USER=kpipe KBUILD_BUILD_HOST=kpipe bzImage
```

(`/work/scratch/boot/build-lkdtm` is a symlink to that O= directory; inside the source tree,
so the compiler sees the same relative paths as the base build and ccache hits: 1,519 s on
the loaded 2-core host; ccache counted 94 % hits, counters shared with concurrent builds.)
The only difference from the base .config is `CONFIG_LKDTM=y`.

The exact commands, per sample (the vng command line, then the guest programs it ran; the
same text is in `<sample>.command.txt`):
"""


def write_readme() -> None:
    parts = [README_HEAD]
    for cmd in sorted(HERE.glob("*.command.txt")):
        sample = cmd.name.removesuffix(".command.txt")
        parts.append(f"\n## {sample}\n\n```\n{cmd.read_text().rstrip()}\n```\n")
    (HERE / "README.md").write_text("".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draft", action="store_true", help="write draft .expected.json files")
    ap.add_argument("--readme", action="store_true", help="only rewrite README.md")
    ap.add_argument("samples", nargs="*", default=list(SAMPLES))
    args = ap.parse_args()
    if args.readme:
        write_readme()
        return
    for sample in args.samples:
        record(sample, args.draft)
    write_readme()


if __name__ == "__main__":
    main()
