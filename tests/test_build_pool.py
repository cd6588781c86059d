"""Build places kept between runs (pipeline/intake/pool.py), on real git and a real kernel.

The first tests use a small git repository of their own: places are taken, kept, told apart,
wiped after a run that did not end in order, and pruned. The last one runs kpipe twice on the
imported tree in a pool of its own: series A adds a symbol to vhost.c, series B does not, and
B's kernels, built in the place A's tip was built in, must not have A's symbol (and B's base
step must rebuild only a handful of files).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git, kpipe_run, printed_record
from series_factory import MARKER, marker_series, one_patch_series

from pipeline.build import diagnostics, make
from pipeline.intake import pool


@pytest.fixture
def small_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    """A repository with two commits (b.c changes, a.c does not) and a private pool."""
    monkeypatch.setenv("KPIPE_POOL", str(tmp_path / "pool"))
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.c").write_text("int a;\n")
    (repo / "b.c").write_text("int b;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "b.c").write_text("int b = 2;\n")
    git(repo, "commit", "-qam", "two")
    return repo, first, git(repo, "rev-parse", "HEAD")


def test_a_kept_place_rewrites_only_the_files_that_differ(small_repo) -> None:
    repo, first, second = small_repo
    with pool.place(repo, first) as p1:
        assert (p1.new, p1.wiped) == (True, False)
        (p1.path / "o-default").mkdir()
        (p1.path / "o-default" / "a.o").write_text("object")
        (p1.path / "stray.c").write_text("left by a patch")
        stamps = {f: (p1.path / f).stat().st_mtime_ns for f in ("a.c", "b.c")}
    time.sleep(0.05)
    with pool.place(repo, second) as p2:
        assert p2.path == p1.path and (p2.new, p2.wiped) == (False, False)
        assert git(p2.path, "rev-parse", "HEAD") == second
        assert (p2.path / "o-default" / "a.o").read_text() == "object"  # the O= dir stays
        assert not (p2.path / "stray.c").exists()
        assert (p2.path / "a.c").stat().st_mtime_ns == stamps["a.c"]
        assert (p2.path / "b.c").stat().st_mtime_ns > stamps["b.c"]


def test_a_build_whose_place_vanished_is_an_error_never_a_result(small_repo,
                                                                  tmp_path: Path) -> None:
    """A real make in the place: a plain failure is the patch's; one after which the worktree
    is gone (another process took the place) is an error, which no later run reuses."""
    repo, first, _ = small_repo
    with pool.place(repo, first) as p:
        (p.path / "Makefile").write_text("all:\n\tfalse\n")
        out = make.build(p.path, p.path / "o-default", "-kpipe-s0", tmp_path / "s0", [], 1)
        assert out.record["status"] == "fail", out.record
        (p.path / "Makefile").write_text(f"all:\n\trm -rf {p.path}/.git {p.path}/Makefile"
                                         "; false\n")
        out = make.build(p.path, p.path / "o-default", "-kpipe-s1", tmp_path / "s1", [], 1)
        assert out.record["status"] == "error", out.record
        assert "was gone when make ended" in out.record["errors"][0]["message"]


WARN = "../a.c:1:5: warning: unused variable 'x' [-Wunused-variable]"


def test_a_build_in_a_kept_place_keeps_the_warnings_of_units_it_did_not_rebuild(
        small_repo, tmp_path: Path) -> None:
    """A real make and ar: the first build compiles a.c (a warning) and links a.o into a thin
    vmlinux.a; the next ones compile nothing. Whatever `previous` the caller gives (a walk's
    first build has [], an ablation's every build, another caller a step that is not what the
    O= holds) each still has a.c's warning while a.o is linked, and not once it is not; only
    where the place does not say what it holds is `previous` the basis."""
    repo, first, _ = small_repo
    with pool.place(repo, first) as p:
        o_dir = p.path / "o-default"
        o_dir.mkdir()
        (o_dir / "b.o").write_text("")
        (o_dir / "link-list").write_text("a.o")
        (p.path / "Makefile").write_text(
            f"all: {o_dir}/a.o\n\tcd {o_dir} && rm -f vmlinux.a && "
            "ar rcST vmlinux.a $$(cat link-list) && mkdir -p arch/x86/boot && "
            "touch arch/x86/boot/bzImage System.map .config\n"
            f"{o_dir}/a.o: a.c\n\t@echo '  CC      a.o'; echo \"{WARN}\"; touch $@\n")
        other = [diagnostics.Diagnostic("z.c", 1, "warning: elsewhere", "z.c")]

        def units(step: str, previous: list | None = None) -> list[str]:
            out = make.build(p.path, o_dir, "-kpipe-s0", tmp_path / step, previous or [], 1)
            assert out.record["status"] == "pass", (tmp_path / step / "build.log").read_text()
            return [d.unit for d in out.warnings]

        assert units("s0") == ["a.c"]  # compiled: its own warning
        assert units("s1") == ["a.c"]  # not compiled: the place's last build left it
        assert units("s2", other) == ["a.c"]  # the place, not the caller's previous step
        (o_dir / "link-list").write_text("b.o")
        assert units("s3") == []  # a.o is no longer linked: its warning is gone
        (o_dir / "link-list").write_text("a.o")
        (p.path / "o-default.warnings.json").unlink()  # a place that does not say
        assert units("s4", [diagnostics.Diagnostic("a.c", 1, "warning: x", "a.c")]) == ["a.c"]
        assert units("s5") == ["a.c"]  # written again by s4


def test_two_runs_at_once_get_two_places(small_repo) -> None:
    repo, first, _ = small_repo
    with pool.place(repo, first) as p1, pool.place(repo, first) as p2:
        assert p1.path != p2.path and p2.new


def test_a_place_left_out_of_order_is_wiped_and_its_git_am_undone(small_repo) -> None:
    repo, first, second = small_repo
    patch = subprocess.run(["git", "-C", str(repo), "format-patch", "--stdout", "-1", second],
                           check=True, capture_output=True, text=True).stdout
    with pytest.raises(KeyboardInterrupt), pool.place(repo, first) as p1:
        (p1.path / "o-default").mkdir()
        (p1.path / "b.c").write_text("int b = 3;\n")  # makes the patch conflict
        git(p1.path, "commit", "-qam", "local")
        proc = subprocess.run(["git", "-C", str(p1.path), "am", "-q"], input=patch, text=True,
                              capture_output=True, env=dict(os.environ, GIT_COMMITTER_NAME="t",
                                                            GIT_COMMITTER_EMAIL="t@t"))
        assert proc.returncode != 0
        raise KeyboardInterrupt  # as Ctrl-C during the build would
    with pool.place(repo, first) as p2:
        assert p2.path == p1.path and (p2.new, p2.wiped) == (False, True)
        assert not (p2.path / "o-default").exists()
        assert git(p2.path, "rev-parse", "HEAD") == first
        assert git(p2.path, "status", "--porcelain") == ""


def test_a_base_build_feeds_the_cache_only_where_no_patch_has_built(small_repo) -> None:
    """The shared ccache is written by a base build only in an O= no posted code built in
    since the place made or wiped it; the mark survives the next run's checkout and clean."""
    from pipeline.run import step_ops

    repo, first, _ = small_repo
    with pool.place(repo, first) as p1:
        build_dir = p1.path / "o-default"
        assert step_ops.jail(True, p1.path, build_dir, base_step=True).ccache_writable
        assert not step_ops.jail(True, p1.path, build_dir, base_step=False).ccache_writable
        assert not step_ops.jail(True, p1.path, build_dir, base_step=True).ccache_writable
    with pool.place(repo, first) as p2:
        assert p2.path == p1.path and not p2.wiped
        assert not step_ops.jail(True, p2.path, build_dir, base_step=True).ccache_writable
        build_dir.mkdir(exist_ok=True)
    with pytest.raises(KeyboardInterrupt), pool.place(repo, first):
        raise KeyboardInterrupt  # the run does not end in order: the next take wipes O=
    with pool.place(repo, first) as p3:
        assert p3.wiped and step_ops.jail(True, p3.path, build_dir, base_step=True).ccache_writable


def test_prune_keeps_the_most_recently_used_free_places(small_repo) -> None:
    repo, first, _ = small_repo
    with pool.place(repo, first) as young, pool.place(repo, first) as old:
        pass  # `old` is given back first, so `young` is the most recently used
    root = young.path.parent
    assert old.path.is_dir() and young.path.is_dir()  # configs/pool.toml keeps two
    with pool.place(repo, first) as held:  # the most recently used free place
        assert held.path == young.path
        removed = pool.prune(repo, root, pool.lock_key(root), pool.Limits(0, 10**12))
        assert removed == [old.path] and held.path.is_dir()  # a held place is never removed
    assert not old.path.exists()
    assert pool.prune(repo, root, pool.lock_key(root), pool.Limits(5, 0)) == [young.path]


def _symbols(run_dir: Path, step: dict) -> str:
    return (run_dir / step["build"]["artifacts"]["System.map"]).read_text()


def test_a_series_never_builds_with_another_series_change(kernel_tree, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPIPE_POOL", str(tmp_path / "pool"))
    series_a = marker_series(kernel_tree.path, kernel_tree.head, tmp_path / "a")
    series_b = one_patch_series(kernel_tree.path, kernel_tree.head, tmp_path / "b", "pool-b")
    runs = {}
    for name, series in (("a", series_a), ("b", series_b)):
        proc = kpipe_run([str(series)], tmp_path / f"reports-{name}")
        rec = printed_record(proc)
        runs[name] = (tmp_path / f"reports-{name}" / "runs" / rec["run_id"], rec)
        assert [s["build"]["status"] for s in rec["steps"]] == ["pass", "pass"], proc.stderr
    (dir_a, rec_a), (dir_b, rec_b) = runs["a"], runs["b"]
    place_a, place_b = rec_a["host"]["build_place"], rec_b["host"]["build_place"]
    assert place_a["new"] and place_b["path"] == place_a["path"]
    assert not place_b["new"] and not place_b["wiped"]
    assert f" {MARKER}\n" in _symbols(dir_a, rec_a["steps"][1])
    assert f" {MARKER}\n" not in _symbols(dir_a, rec_a["steps"][0])
    for step in rec_b["steps"]:
        assert f" {MARKER}\n" not in _symbols(dir_b, step), step["index"]
    # B's base, built where A's tip was: vhost.c back as it was and the version files
    assert 0 < rec_b["steps"][0]["build"]["units_rebuilt"] < 30
