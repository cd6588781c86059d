"""The `kpipe` command: run, ablate, plan, merge, fetch, tree, doctor, report, serve, index.

Reads the command line; prints progress on stderr and results on stdout (`--json` for
machines). Exit codes follow DESIGN.md: 0 good, 1 bad verdict, 2 bad input, 3 infrastructure
error (130 when interrupted).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

from pipeline import atomic, cli_plan, cli_tree, doctor, errors, paths
from pipeline.fanout import merge
from pipeline.fanout import plan as planmod
from pipeline.intake import series
from pipeline.progress import Progress
from pipeline.record import store as record_store
from pipeline.report import render as report_render
from pipeline.report import run_matrix
from pipeline.run.main import RunOptions, run


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _series_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", "-v", type=int, help="pick this revision (like b4 -v)")
    p.add_argument("--allow-partial", action="store_true",
                   help="test a series even when patches are missing")
    p.add_argument("--lore", help="lore root URL b4 fetches message-ids from "
                                  f"(default {series.DEFAULT_LORE})")


def _work_args(p: argparse.ArgumentParser) -> None:
    """What a run is made of besides the series: tree, base, configs, boot and suites."""
    tree_choice = p.add_mutually_exclusive_group()
    tree_choice.add_argument("--tree", type=Path, help="use this kernel checkout instead of an "
                                                       "imported tree")
    tree_choice.add_argument("--tree-name", help="use this tree of configs/trees.toml, imported "
                                                 "on first use (default: the offline default, "
                                                 "Debian's 6.12; see `kpipe tree --list`)")
    p.add_argument("--base", help="apply on this commit (wins over base-commit:)")
    p.add_argument("--base-remote", help="fetch a missing base commit from this git remote")
    p.add_argument("--config", action="append", dest="configs",
                   help="named config from configs/configs.toml (repeatable; default: default)")
    p.add_argument("--fragment", action="append", default=[],
                   help="extra fragment from configs/kconfig/ (repeatable)")
    p.add_argument("--boot", action=argparse.BooleanOptionalAction, default=None,
                   help="boot each step under virtme-ng and run the suites (default: yes)")
    p.add_argument("--suite", action="append", dest="suites", default=[],
                   help="guest suite from virtme-tests/ (repeatable)")
    p.add_argument("--slow-steps", choices=("ends", "all"), default=None,
                   help="where suites whose suite.toml says steps = \"ends\" run: at the base "
                        "and the tip (ends, the default) or at every step (all)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kpipe", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="apply, build (and boot, test) every step of a series")
    r.add_argument("series", nargs="?", default=None,
                   help="message-id, lore URL, mbox, maildir or folder of .patch files "
                        "(default: patches/vhost-scsi-log-6.12)")
    _series_args(r)
    _work_args(r)
    r.add_argument("--plan", type=Path, help="run the series, base and configs of this plan "
                                             "(from `kpipe plan`) instead of SERIES")
    r.add_argument("--shard", type=int, help="with --plan: run only this shard's steps into a "
                                             "partial record (see `kpipe merge`)")
    r.add_argument("--no-cache", action="store_true", help="redo every step")
    r.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="configure and build the series' code with your own rights, network "
                        "and home (default: inside bubblewrap; a run stops when it cannot)")
    r.add_argument("--confirm", type=int, default=1, metavar="N",
                   help="re-run each failure that decides a verdict N times in a fresh boot "
                        "before the verdict is written (default 1; 0: off)")
    r.add_argument("--boot-unchanged", action="store_true",
                   help="boot every step, even one whose build made the same objects as the "
                        "step before it (default: such a step takes that step's results)")
    r.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="boot each step before building the next (default: step k boots while "
                        "step k+1 builds; for debugging)")
    r.add_argument("--boots", type=int, metavar="N",
                   help="guests booted at once (default: one per host core, at most 2)")
    r.add_argument("-j", "--jobs", type=int, help="make -j (default: CPUs)")
    r.add_argument("--run-dir", type=Path, help="write the run here (new or empty) instead of "
                                                "reports/runs/<run-id>")
    r.add_argument("--json", action="store_true", help="print the record on stdout")

    ab = sub.add_parser("ablate", help="revert each hunk of a series' whole diff in turn, build "
                                       "and boot the tip with the fast suites: which hunks "
                                       "any test needs")
    ab.add_argument("series", nargs="?", default=None, help="as for `kpipe run`")
    _series_args(ab)
    tree_choice = ab.add_mutually_exclusive_group()
    tree_choice.add_argument("--tree", type=Path, help="as for `kpipe run`")
    tree_choice.add_argument("--tree-name", help="as for `kpipe run`")
    ab.add_argument("--base", help="apply on this commit (wins over base-commit:)")
    ab.add_argument("--config", default="default",
                    help="named config from configs/configs.toml (default: default)")
    ab.add_argument("--suite", action="append", dest="suites", default=[],
                    help="guest suite from virtme-tests/ (repeatable; those whose steps rule "
                         "is not \"all\" are left out)")
    ab.add_argument("--no-cache", action="store_true", help="redo every hunk")
    ab.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                    help="as for `kpipe run`")
    ab.add_argument("-j", "--jobs", type=int, help="make -j (default: CPUs)")
    ab.add_argument("--json", action="store_true", help="print the record on stdout")

    pl = sub.add_parser("plan", help="freeze a series, its base and configs, split into shards")
    pl.add_argument("series", nargs="?", default=str(paths.DEFAULT_SERIES),
                    help="as for `kpipe run`")
    _series_args(pl)
    _work_args(pl)
    pl.add_argument("-o", "--output", type=Path, required=True, help="the plan file to write")
    pl.add_argument("--shards", type=int, default=1, help="how many shards (at most one per "
                                                          "step and config; default 1)")
    pl.add_argument("--github-output", type=Path, metavar="FILE",
                    help="append `shards=<JSON list>` and `id=<plan id>` to FILE "
                         "(a GitHub Actions step's $GITHUB_OUTPUT)")
    pl.add_argument("--json", action="store_true", help="print the plan's shards as JSON")

    m = sub.add_parser("merge", help="merge the partial records of a plan's shards into one run")
    m.add_argument("partials", nargs="+", type=Path,
                   help="each shard's run directory (or its results.json)")
    m.add_argument("--run-dir", type=Path, help="write the merged run here (new or empty) "
                                                "instead of reports/runs/<run-id>")
    m.add_argument("--json", action="store_true", help="print the merged record on stdout")

    f = sub.add_parser("fetch", help="read a series with b4 and print what was found")
    f.add_argument("series")
    _series_args(f)
    f.add_argument("--json", action="store_true")

    t = sub.add_parser("tree", help="import a kernel tree of configs/trees.toml into the cache "
                                    "(fetching it first when it is a Debian package)")
    t.add_argument("name", nargs="?", help="the tree's name in configs/trees.toml (default: "
                                           "the offline default, Debian's 6.12)")
    t.add_argument("--tarball", type=Path, help="import this linux-source tarball as the "
                                                "default tree instead")
    t.add_argument("--list", action="store_true", help="show the known trees and which are "
                                                       "imported (imports nothing)")
    t.add_argument("--where", action="store_true", help="print the tree's repository path "
                                                        "(imports nothing; for caching it)")
    t.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="render a run's reports from its results.json")
    rp.add_argument("run", help="run directory, or run id under $KPIPE_REPORTS/runs")
    rp.add_argument("--format", default="html", choices=report_render.FORMATS,
                    help="html (report.html in the run dir), mail, markdown, junit, kcidb "
                         "(to stdout unless -o), or all (every file into the run dir)")
    rp.add_argument("-o", "--output", type=Path, help="write here instead")

    sv = sub.add_parser("serve", help="serve the viewer over $KPIPE_REPORTS on 127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)

    ix = sub.add_parser("index", help="refresh the run index ($KPIPE_REPORTS/index.sqlite) "
                        "from the records")
    ix.add_argument("--rebuild", action="store_true",
                    help="delete the index and build it again from every record")

    d = sub.add_parser("doctor", help="check tools, kernel source, disk and KVM")
    d.add_argument("--no-accel", action="store_true", help="skip the accelerator probe")
    d.add_argument("--json", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    return {"run": cmd_run, "ablate": cmd_ablate, "plan": _said(cli_plan.cmd_plan),
            "merge": cmd_merge, "fetch": cmd_fetch,
            "tree": _said(cli_tree.cmd_tree), "doctor": cmd_doctor, "report": cmd_report,
            "serve": cmd_serve, "index": cmd_index}[args.cmd](args, argv)


def _said(cmd):  # noqa: ANN001, ANN202 - a command, wrapped
    """A command whose errors are raised: each ends with its message and exit code."""
    def run(args: argparse.Namespace, argv: list[str]) -> int:
        try:
            return cmd(args, argv)
        except errors.KpipeError as exc:
            return _failed(exc)
    return run


def _bad_input(message: str) -> int:
    Progress().error(message)
    return 2


def _failed(exc: errors.KpipeError) -> int:
    """Say what went wrong; the exit code of pipeline/errors.py (2 bad input, 3 infra)."""
    failed = errors.failure(exc)
    assert failed is not None  # every KpipeError has one
    Progress().error(failed.message)
    return failed.code


def _fresh_dir(path: Path | None) -> str | None:
    """Why `path` cannot take a new run (it holds files), or None."""
    if path is not None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        return f"--run-dir {path}: not a new or empty directory (nothing was written)"
    return None


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    if problem := _fresh_dir(args.run_dir):
        return _bad_input(problem)
    if args.confirm < 0:
        return _bad_input("--confirm N: N is 0 or more")
    if args.boots is not None and args.boots < 1:
        return _bad_input("--boots N: N is 1 or more")
    common = {"tree": args.tree, "no_cache": args.no_cache, "jobs": args.jobs,
              "confirm": args.confirm, "sandbox": args.sandbox, "overlap": args.overlap,
              "boots": args.boots,
              "boot_unchanged": args.boot_unchanged,
              "argv": ["kpipe", *argv], "run_dir": args.run_dir}
    if args.plan is not None:
        fixed = [name for name, given in (
            ("SERIES", args.series is not None), ("--tree-name", args.tree_name),
            ("--base", args.base),
            ("--base-remote", args.base_remote), ("--revision", args.revision),
            ("--config", args.configs), ("--fragment", args.fragment),
            ("--boot/--no-boot", args.boot is not None), ("--suite", args.suites),
            ("--slow-steps", args.slow_steps)) if given]
        if fixed:
            return _bad_input(f"--plan fixes the series, tree, base and configs: drop "
                              f"{', '.join(fixed)}")
        try:
            plan = planmod.load(args.plan)
            planmod.shard_ranges(plan, args.shard)
        except errors.KpipeError as exc:
            return _failed(exc)
        opts = RunOptions.from_plan(plan, args.shard, **common)
    elif args.shard is not None:
        return _bad_input("--shard needs --plan")
    else:
        opts = RunOptions(
            series=args.series or str(paths.DEFAULT_SERIES), tree_name=args.tree_name,
            base=args.base,
            base_remote=args.base_remote, revision=args.revision,
            allow_partial=args.allow_partial, configs=args.configs or ["default"],
            fragments=args.fragment, boot=args.boot is not False, suites=args.suites,
            slow_steps=args.slow_steps or "ends", lore=args.lore, **common)
    code, run_dir = run(opts, Progress(quiet=False))
    return run_matrix.show_record(run_dir, code, args.json)


def cmd_ablate(args: argparse.Namespace, argv: list[str]) -> int:
    from pipeline.run.ablate import ablate

    opts = RunOptions(series=args.series or str(paths.DEFAULT_SERIES), tree=args.tree,
                      tree_name=args.tree_name, base=args.base, revision=args.revision,
                      allow_partial=args.allow_partial, configs=[args.config],
                      suites=args.suites, lore=args.lore, no_cache=args.no_cache,
                      jobs=args.jobs, sandbox=args.sandbox, argv=["kpipe", *argv])
    try:
        code, run_dir = ablate(opts, Progress(quiet=False))
    except errors.KpipeError as exc:
        return _failed(exc)
    rec = record_store.load(run_dir)
    if args.json:
        print(json.dumps(rec, indent=1))
    else:
        from pipeline.report import ablation

        for h in (rec.get("ablation") or {}).get("hunks", []):
            print(f"hunk {h['index']} {h['file']} (patch {h['patch'] or '?'}): "
                  f"{ablation.verdict(h)}")
        page = run_dir / ablation.PAGE
        shown = f"  page: {page}" if page.is_file() else ""
        print(f"record: {run_dir / 'results.json'}{shown}  (exit {code})")
    return code


def cmd_merge(args: argparse.Namespace, argv: list[str]) -> int:
    if problem := _fresh_dir(args.run_dir):
        return _bad_input(problem)
    try:
        code, run_dir = merge.merge(args.partials, args.run_dir, ["kpipe", *argv])
    except errors.KpipeError as exc:
        return _failed(exc)
    return run_matrix.show_record(run_dir, code, args.json)


def cmd_fetch(args: argparse.Namespace, argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="kpipe-fetch-") as tmp:
        try:
            ser = series.intake(args.series, Path(tmp), args.revision, args.allow_partial,
                                args.lore)
        except errors.KpipeError as exc:
            return _failed(exc)
    data = ser.to_dict()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"{data['subject']} (v{data['revision']}) by {data['author']}")
    print(f"  link: {data['link']}")
    print(f"  base-commit: {data['base_commit'] or '(none)'}")
    for p in data["patches"]:
        print(f"  [{p['n']}/{data['expected']}] {p['subject']}  <{p['msgid']}>")
        for t in p["trailers"]:
            print(f"        {t}")
    for w in data["warnings"]:
        print(f"  warning: {w}")
    return 0


def cmd_doctor(args: argparse.Namespace, argv: list[str]) -> int:
    results = doctor.checks(probe_accel=not args.no_accel)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for c in results:
            mark = "ok " if c["ok"] else "MISSING"
            print(f"{mark:7} {c['name']:20} {c['detail']}"
                  + ("" if c["ok"] else f"\n        fix: {c['fix']}"))
    return 0 if all(c["ok"] for c in results) else 3


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        run_dir = report_render.find_run(args.run)
        if args.format == "all":
            written = report_render.write_all(run_dir)
            if args.output:
                Progress().warn("-o is ignored with --format all (files go into the run dir)")
            for path in written:
                print(path)
            return 0
        text = report_render.render_format(run_dir, args.format)
    except errors.KpipeError as exc:
        return _failed(exc)
    if args.format == "html" or args.output:
        target = args.output or run_dir / report_render.FILES["html"]
        print(atomic.write_text(target, text))
    else:
        sys.stdout.write(text)
    return 0


def cmd_index(args: argparse.Namespace, argv: list[str]) -> int:
    from pipeline.record import index

    reports = paths.reports_dir()
    if args.rebuild:
        print(f"index rebuilt: {index.rebuild(reports)} runs in {index.index_path(reports)}")
    else:
        print(f"index refreshed: {index.refresh(reports)} records re-read")
    return 0


def cmd_serve(args: argparse.Namespace, argv: list[str]) -> int:
    from pipeline.report import serve

    reports = paths.reports_dir()
    server = serve.make_server(reports, args.port)
    host, port = server.server_address[:2]
    print(f"kpipe viewer: http://{host}:{port}/ (serving {reports}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
