"""Series intake through b4: a message-id, lore URL, mbox, maildir or folder of .patch files in,
an am-ready mbox and a parsed summary out.

Reads the user's series argument (and, for a message-id, the lore server named by b4's
`midmask`); writes into the run's series/ directory: `thread.mbox` (the raw input as one mbox),
`series.mbx` (b4 am's output: the chosen revision, trailers from replies applied) and
`series.cover` when there is a cover letter. Returns a `Series` summary for the record.

b4 does the mail work (fetching, threading, revisions, trailers, am-ready messages). kpipe
adds what b4 leaves to its caller: joining a folder of .patch files into one mbox (b4 cannot
read a folder), and turning b4's silent or terse failures into messages that say what is
wrong with the input.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path

import b4

from pipeline.errors import BadInput
from pipeline.intake import msgids

logging.getLogger("b4").setLevel(logging.WARNING)

DEFAULT_LORE = "https://lore.kernel.org/all"
_LORE_URL = re.compile(r"^https?://[^/]+/(?:[^/]+/)?(?P<msgid>[^/]+@[^/]+?)/?(?:[tT]/?|raw|t\.mbox\.gz)?$")


class SeriesError(BadInput):
    """The series cannot be read: bad input, never a kpipe bug (exit code 2)."""


@dataclass
class Patch:
    n: int
    subject: str
    author: str
    msgid: str
    trailers: list[str]
    attestation: str


@dataclass
class Series:
    subject: str
    revision: int
    msgid: str
    link: str
    author: str
    cover: str | None
    expected: int
    complete: bool
    base_commit: str | None
    prerequisites: dict
    patches: list[Patch]
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    mbox: str = "series/series.mbx"

    def to_dict(self) -> dict:
        return asdict(self)


def b4_env(lore: str | None = None) -> dict[str, str]:
    """Environment for b4: its `midmask` pointed at `lore` through git's env config."""
    env = dict(os.environ)
    env["GIT_CONFIG_COUNT"] = "1"
    env["GIT_CONFIG_KEY_0"] = "b4.midmask"
    env["GIT_CONFIG_VALUE_0"] = (lore or DEFAULT_LORE).rstrip("/") + "/%s"
    return env


def msgid_of(arg: str) -> str | None:
    """The message-id in a lore URL or a bare message-id, or None when `arg` is neither."""
    arg = arg.strip()
    if m := _LORE_URL.match(arg):
        return m.group("msgid")
    bare = arg.strip("<>")
    if "@" in bare and "/" not in bare and " " not in bare and not Path(arg).exists():
        return bare
    return None


def _b4() -> str:
    exe = shutil.which("b4") or str(Path(sys.executable).with_name("b4"))
    if not Path(exe).exists():
        raise FileNotFoundError("b4 is not installed (run scripts/setup.sh)")
    return exe


def join_folder(folder: Path, out: Path) -> int:
    """Join the .patch files of `folder`, in name order, into the mbox `out`; return the count.

    git format-patch files already start with a `From <sha> <date>` line; a file without one
    gets a neutral separator so it stays a separate message.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix in (".patch", ".eml") and p.is_file())
    if not files:
        raise SeriesError(f"{folder}: no .patch files in this folder")
    with open(out, "wb") as fh:
        for path in files:
            data = _readable(path)
            if not data.startswith(b"From "):
                fh.write(b"From kpipe@localhost Thu Jan  1 00:00:00 1970\n")
            fh.write(data if data.endswith(b"\n") else data + b"\n")
            fh.write(b"\n")
    return len(files)


def _readable(path: Path) -> bytes:
    data = path.read_bytes()
    if not data.strip():
        raise SeriesError(f"{path}: the file is empty")
    if b"\0" in data[:65536]:
        raise SeriesError(f"{path}: this is a binary file, not a mailbox or patch")
    return data


def gather(arg: str, workdir: Path, lore: str | None = None) -> tuple[Path, str]:
    """Turn the series argument into one raw mbox at workdir/thread.mbox; return it and a label."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = workdir / "input.mbox"
    path = Path(arg)
    if path.is_dir():
        if any((path / sub).is_dir() for sub in ("cur", "new")):
            # git and many copy tools drop a maildir's empty new/ or tmp/; read a copy that has
            # all three so mailbox.Maildir accepts it, without touching the user's directory.
            view = workdir / "maildir"
            shutil.rmtree(view, ignore_errors=True)
            shutil.copytree(path, view, symlinks=False)
            for sub in ("cur", "new", "tmp"):
                (view / sub).mkdir(exist_ok=True)
            box = mailbox.Maildir(str(view), factory=None, create=False)
            with open(raw, "wb") as fh:
                for key in sorted(box.keys()):
                    fh.write(b"From kpipe@localhost Thu Jan  1 00:00:00 1970\n")
                    fh.write(box.get_bytes(key).replace(b"\r\n", b"\n") + b"\n")
            if raw.stat().st_size == 0:
                raise SeriesError(f"{path}: the maildir holds no mail")
            return raw, f"maildir:{path}"
        join_folder(path, raw)
        return raw, f"folder:{path}"
    if path.is_file():
        _readable(path)
        shutil.copyfile(path, raw)
        return raw, f"mbox:{path}"
    msgid = msgid_of(arg)
    if msgid is None:
        raise SeriesError(f"{arg}: no such file or folder, and not a message-id or lore URL")
    proc = subprocess.run([_b4(), "mbox", "-n", raw.name, "-o", str(workdir), msgid],
                          capture_output=True, text=True, env=b4_env(lore))
    if proc.returncode != 0 or not raw.exists() or raw.stat().st_size == 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SeriesError(f"could not fetch <{msgid}> from {lore or DEFAULT_LORE}: "
                          + (" / ".join(detail) or f"b4 exited {proc.returncode}"))
    return raw, f"msgid:{msgid}"


def _messages(raw: Path) -> list[EmailMessage]:
    box = mailbox.mbox(str(raw), factory=lambda f: email.message_from_binary_file(
        f, policy=email.policy.default), create=False)
    msgs = [m for m in box if m is not None]
    if not msgs:
        raise SeriesError(f"{raw}: no mail found (is it an mbox?)")
    return msgs


def _check_messages(msgs: list[EmailMessage], warnings: list[str]) -> None:
    no_id = [str(m.get("Subject", "(no subject)")) for m in msgs if not m.get("Message-Id")]
    if no_id:
        raise SeriesError(
            f"{len(no_id)} mail(s) have no Message-Id header (b4 cannot thread them): "
            + "; ".join(no_id[:3]) + " — generate series with `git format-patch --thread`")


def parse(raw: Path, revision: int | None, allow_partial: bool, warnings: list[str]):
    """Read the raw thread with b4's LoreMailbox; return the chosen LoreSeries."""
    msgs = _messages(raw)
    _check_messages(msgs, warnings)
    _setup_b4()
    lmbx = b4.LoreMailbox()
    for msg in msgs:
        lmbx.add_message(msg)
    if not lmbx.series:
        raise SeriesError(f"{raw}: no patches found: the mails are not a patch series")
    revs = sorted(lmbx.series)
    if revision is None:
        revision = lmbx.get_latest_revision() or revs[-1]
        if len(revs) > 1:
            warnings.append(f"the input holds revisions {', '.join(f'v{r}' for r in revs)}: "
                            f"using v{revision} (pick one with --revision)")
    elif revision not in lmbx.series:
        raise SeriesError(f"revision v{revision} is not in the input "
                          f"(found {', '.join(f'v{r}' for r in revs)})")
    lser = lmbx.get_series(revision, reroll=False, codereview_trailers=False)
    if lser is None:
        raise SeriesError(f"v{revision}: every patch is missing")
    missing = [i for i, p in enumerate(lser.patches) if i > 0 and p is None]
    if missing:
        text = (f"v{revision} is incomplete: missing patch(es) "
                + ", ".join(f"{i}/{lser.expected}" for i in missing))
        if not allow_partial:
            raise SeriesError(text + " (use --allow-partial to test what is there)")
        warnings.append(text)
    return lser, revision


_B4_READY = False


def _setup_b4() -> None:
    """Load b4's configuration once, as its own command line does before any work."""
    global _B4_READY
    if not _B4_READY:
        b4._setup_main_config()
        _B4_READY = True


def drop_duplicates(raw: Path, out: Path, warnings: list[str]) -> None:
    """Write `raw` to `out` without repeated mails or second postings of the same patch.

    A patch posted twice (same revision and counter, another Message-Id) would make b4 count
    it as an extra patch; the first posting is kept and the user is told.
    """
    _setup_b4()
    kept: list[EmailMessage] = []
    seen_ids: set[str] = set()
    seen_patch: dict[tuple[int, int, int], str] = {}
    for msg in _messages(raw):
        mid = str(msg.get("Message-Id", "")).strip()
        if mid and mid in seen_ids:
            warnings.append(f"mail {mid} appears more than once: kept the first copy")
            continue
        seen_ids.add(mid)
        lmsg = b4.LoreMessage(msg)
        if not lmsg.reply and lmsg.has_diff:
            slot = (lmsg.revision, lmsg.counter, lmsg.expected)
            if slot in seen_patch:
                warnings.append(f"v{slot[0]} patch {slot[1]}/{slot[2]} was posted twice "
                                f"(<{seen_patch[slot]}> and <{lmsg.msgid}>): using the first")
                continue
            seen_patch[slot] = lmsg.msgid
        kept.append(msg)
    box = mailbox.mbox(str(out), create=True)
    try:
        box.lock()
        for msg in kept:
            box.add(msg)
        box.flush()
    finally:
        box.unlock()
        box.close()


def run_b4_am(raw: Path, outdir: Path, revision: int, lore: str | None) -> Path:
    """Run `b4 am -m` on the raw thread; return the am-ready mbox."""
    cmd = [_b4(), "am", "-m", str(raw), "-o", str(outdir), "-n", "series", "-v", str(revision),
           "--no-parent"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=b4_env(lore))
    mbx = outdir / "series.mbx"
    if proc.returncode != 0 or not mbx.exists():
        detail = (proc.stderr or proc.stdout).strip()
        raise SeriesError(f"b4 am failed (exit {proc.returncode}): "
                          + (detail[-500:] or "b4 printed nothing"))
    (outdir / "b4-am.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    return mbx


def intake(arg: str, run_dir: Path, revision: int | None = None, allow_partial: bool = False,
           lore: str | None = None) -> Series:
    """The whole intake: gather, parse with b4, write the am-ready mbox, summarise."""
    outdir = run_dir / "series"
    given, source = gather(arg, outdir, lore)
    warnings: list[str] = []
    if not source.startswith("msgid:"):
        warnings += msgids.assign(given)
    _check_messages(_messages(given), warnings)
    raw = outdir / "thread.mbox"
    drop_duplicates(given, raw, warnings)
    lser, revision = parse(raw, revision, allow_partial, warnings)
    mbx = run_b4_am(raw, outdir, revision, lore)
    am_msgs = _messages(mbx)
    present = [p for p in lser.patches[1:] if p is not None]
    if len(am_msgs) != len(present):
        raise SeriesError(f"b4 am wrote {len(am_msgs)} patches, expected {len(present)}")
    patches = []
    for lmsg, am in zip(present, am_msgs, strict=True):
        body = am.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        trailers = _trailers(text)
        patches.append(Patch(lmsg.counter, lmsg.subject, f"{lmsg.fromname} <{lmsg.fromemail}>",
                             lmsg.msgid, trailers, _attestation(lmsg)))
    cover = lser.patches[0]
    cover_text = None
    if cover is not None:
        cover_text = cover.body
        b4_log = logging.getLogger("b4")
        b4_log.disabled = True  # save_cover logs the path it wrote at CRITICAL level
        try:
            lser.save_cover(str(outdir / "series.cover"))
        finally:
            b4_log.disabled = False
    first = cover or present[0]
    lore_root = (lore or DEFAULT_LORE).rstrip("/")
    return Series(
        subject=lser.subject or first.subject, revision=revision, msgid=first.msgid,
        link=("(not posted: local mail; Message-Ids made by kpipe)"
              if first.msgid.endswith(msgids.DOMAIN) else f"{lore_root}/{first.msgid}/"),
        author=f"{lser.fromname} <{lser.fromemail}>",
        cover=cover_text, expected=lser.expected, complete=bool(lser.complete),
        base_commit=lser.base_commit,
        prerequisites={"patch_ids": lser.prereq_patch_ids or [],
                       "base_commit": lser.prereq_base_commit,
                       "message_ids": _prereq_msgids(cover_text or "")},
        patches=patches, warnings=warnings, source=source,
        mbox=str(mbx.relative_to(run_dir)),
    )


_TRAILER = re.compile(r"^([A-Z][A-Za-z-]+-by|Fixes|Link|Closes|Cc|Suggested-by): .+$", re.M)


def _trailers(body: str) -> list[str]:
    head = body.split("\n---\n", 1)[0]
    return [m.group(0) for m in _TRAILER.finditer(head)]


def _prereq_msgids(text: str) -> list[str]:
    return re.findall(r"^prerequisite-message-id:\s*<?([^>\s]+)>?", text, re.M | re.I)


def _attestation(lmsg) -> str:  # noqa: ANN001 - b4.LoreMessage
    """Which signatures the patch mail carries (verification needs keys this run may lack)."""
    kinds = [name for header, name in (("X-Developer-Signature", "patatt"),
                                       ("DKIM-Signature", "dkim")) if lmsg.msg.get(header)]
    return ", ".join(f"{k}-signed" for k in kinds) or "none"
