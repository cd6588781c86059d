"""Kernel splat scanner: kernel log text in, splats attributed to test cases out.

Reads the pattern lists configs/splats/deny.txt (`<kind> <regex>`: a log message matching it
starts a splat) and configs/splats/allow.txt (`<kind> <regex> # <reason>`: a splat of that kind
whose title matches is allowed and reported apart); a missing or empty list is an error. Reads
a kernel log (the runner's dmesg.txt, the console, or /sys/kernel/debug/kmemleak output) and
the step's System.map to symbolise bare kernel addresses. Writes nothing.

A splat runs from its first line to the end of its report: the `---[ end ...` line, the first
line after the last `</TASK>` that is not part of the report, another splat, or a kpipe marker.
Its `test` is the case whose window (`kpipe: case <suite>/<n> start` up to the next marker) it
fell in, as a key (suite, program, n) that the caller turns into a case name; None outside any
case (boot, between programs, the final kmemleak scan).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import paths
from pipeline.errors import BadInput

KINDS = ("warning", "bug", "oops", "gpf", "kasan", "ubsan", "lockdep", "rcu-stall", "hung-task",
         "soft-lockup", "hard-lockup", "kmemleak", "panic")
STAMP_RE = re.compile(r"^\s*(?:<\d+>)?\[\s*\d+\.\d+\]\s?(?:\[\s*[TC]\d+\]\s?)?")
MARKER_RE = re.compile(
    r"kpipe: (?:case (\S+)/(\d+) start prog=(\S+)|program \S+ |runner |kmemleak)")
END_RE = re.compile(r"^---\[ end ")
# A lockdep lock line: `ffff888003ca35c0 (&tpg->tv_tpg_mutex){+.+.}-{3:3}, at: fn+0x44d/0x8e0`
LOCK_RE = re.compile(r"\(([^(){}\s]+)\)\{[^}]*\}(?:-\{[^}]*\})?, at: ([A-Za-z_][\w.]*)\+0x")
ADDR_RE = re.compile(r"\b(?:0x)?(ffffffff[89a-f][0-9a-f]{7})\b(?!>?\]?\s*[\w.]+\+0x)")
FRAME_RE = re.compile(
    r"^\s*(?:\? )?(?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
RIP_RE = re.compile(r"^RIP: \w+:([A-Za-z_][\w.]*)\+0x")
AFTER_TRACE_RE = re.compile(
    r"^(irq event stamp|hardirqs last|softirqs last|Kernel Offset|Modules linked in|CR2:|"
    r"RIP:|RSP:|R[A-Z0-9]{2}:|FS:|CS:|DR[0-7]:|PKRU:|Code:|---\[ end)")
MERGE_INTO = {"bug", "oops", "gpf", "kasan"}
SKIP_FRAMES = re.compile(
    r"^(dump_stack\w*|show_stack|__warn\w*|warn_\w+|report_bug|handle_bug|exc_\w+|asm_exc_\w+|"
    r"do_error_trap|do_trap|die\w*|oops_\w+|panic|__schedule\w*|schedule\w*|io_schedule\w*|"
    r"kmemleak_\w+|__kmalloc\w*|kmalloc\w*|kmem_cache_alloc\w*|__kmem_cache_alloc\w*|"
    r"slab_post_alloc_hook|kasan_\w+|__kasan_\w+|print_report|ubsan_\w+|__ubsan_\w+|"
    r"lock_acquire|lock_release|_raw_\w+|__might_\w+|rcu_\w+|watchdog_\w+|"
    r"check_\w+lock\w*|__lock_acquire|validate_chain|print_\w+|debug_show_all_locks|"
    r"entry_SYSCALL_64\w*|do_syscall_64|x64_sys_call|__x64_sys_\w+|ret_from_fork\w*|"
    r"kthread|worker_thread|process_one_work|__cond_resched|trace_\w+|lkdtm_do_action|"
    r"direct_entry|full_proxy_write|vfs_write|ksys_write)$")
HEX_RE = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b")
NUM_RE = re.compile(r"\b\d+\b")


class SplatConfigError(BadInput):
    """A pattern list is missing, empty or malformed."""


@dataclass
class Patterns:
    deny: list[tuple[str, re.Pattern]]
    allow: list[tuple[str, re.Pattern, str]]


@dataclass
class Splat:
    kind: str
    lines: list[str]
    window: tuple[str, str, int] | None
    title: str = ""
    allowed: str | None = None  # the allow-list reason, when allowed
    trace_done: bool = False
    closed: bool = False
    extra: dict = field(default_factory=dict)

    def as_record(self, test: str | None) -> dict:
        rec = {"kind": self.kind, "title": self.title, "trace": "\n".join(self.lines),
               "test": test}
        if self.allowed:
            rec["allowed"] = self.allowed
        return rec


def _pattern_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise SplatConfigError(f"splat pattern list {path} not found")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise SplatConfigError(f"splat pattern list {path} is empty")
    return lines


def _compile(kind: str, regex: str, path: Path) -> re.Pattern:
    if kind not in KINDS:
        raise SplatConfigError(f"{path}: unknown kind {kind!r}")
    try:
        return re.compile(regex)
    except re.error as exc:
        raise SplatConfigError(f"{path}: bad regex {regex!r}: {exc}") from exc


def load_patterns(deny: Path | None = None, allow: Path | None = None) -> Patterns:
    deny = deny or paths.CONFIGS_DIR / "splats" / "deny.txt"
    allow = allow or paths.CONFIGS_DIR / "splats" / "allow.txt"
    deny_list = []
    for line in _pattern_lines(deny):
        kind, _, regex = line.partition(" ")
        deny_list.append((kind, _compile(kind, regex.strip(), deny)))
    allow_list = []
    for line in _pattern_lines(allow):
        body, sep, reason = line.rpartition(" # ")
        if not sep or not reason.strip():
            raise SplatConfigError(f"{allow}: entry without ' # <reason>': {line!r}")
        kind, _, regex = body.strip().partition(" ")
        allow_list.append((kind, _compile(kind, regex.strip(), allow), reason.strip()))
    return Patterns(deny_list, allow_list)


class SystemMap:
    """Text symbols of a System.map, for turning bare addresses into sym+off/size."""

    def __init__(self, path: Path) -> None:
        entries = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                entries.append((int(parts[0], 16), parts[2]))
        entries.sort()
        self.addrs = [a for a, _ in entries]
        self.names = [n for _, n in entries]

    def lookup(self, addr: int) -> str | None:
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or i + 1 >= len(self.addrs):
            return None
        size = self.addrs[i + 1] - self.addrs[i]
        return f"{self.names[i]}+{addr - self.addrs[i]:#x}/{size:#x}"

    def symbolise(self, line: str) -> str:
        def repl(m: re.Match) -> str:
            sym = self.lookup(int(m.group(1), 16))
            return f"{m.group(0)} {{{sym}}}" if sym else m.group(0)

        return ADDR_RE.sub(repl, line)


def message(line: str) -> str | None:
    """The kernel message of a log line, or None if the line has no kernel timestamp."""
    m = STAMP_RE.match(line)
    return line[m.end():].rstrip("\r\n") if m else None


def _kind_of(msg: str, patterns: Patterns) -> str | None:
    for kind, rx in patterns.deny:
        if rx.match(msg):
            return kind
    return None


def _continues(splat: Splat, msg: str) -> bool:
    if splat.trace_done:
        return bool(AFTER_TRACE_RE.match(msg))
    if splat.kind == "kmemleak" and splat.lines and splat.lines[0].startswith("unreferenced"):
        return msg.startswith(" ")
    if splat.kind == "kmemleak":
        return False  # the one-line dmesg summary
    return True


def scan(text: str, patterns: Patterns, system_map: SystemMap | None = None,
         require_stamps: bool = True, max_lines: int = 300) -> list[Splat]:
    """All splats in `text`, in order. With require_stamps, lines without a kernel timestamp
    (vng's own output, guest program output on the console) are ignored."""
    splats: list[Splat] = []
    window: tuple[str, str, int] | None = None
    cur: Splat | None = None
    for raw in text.splitlines():
        msg = message(raw)
        if msg is None:
            if require_stamps:
                continue
            msg = raw.rstrip("\r\n")
        if m := MARKER_RE.search(msg):
            cur = None
            window = (m.group(1), m.group(3), int(m.group(2))) if m.group(1) else None
            continue
        kind = _kind_of(msg, patterns)
        if kind and cur and not cur.trace_done and cur.kind in MERGE_INTO and kind in (
                "oops", "gpf"):
            kind = None  # the Oops line of a BUG/page fault/KASAN report already open
        if kind:
            cur = Splat(kind, [], window)
            splats.append(cur)
        elif cur is None or not _continues(cur, msg) or len(cur.lines) >= max_lines:
            cur = None
            continue
        cur.lines.append(system_map.symbolise(msg) if system_map else msg)
        if msg.strip() == "</TASK>":
            cur.trace_done = True
        if END_RE.match(msg):
            cur = None
    for s in splats:
        s.title = title(s)
        s.allowed = next((why for kind, rx, why in patterns.allow
                          if kind == s.kind and rx.search(s.title)), None)
    return splats


def _first_frame(lines: list[str]) -> str | None:
    for line in lines:
        if m := RIP_RE.match(line.strip()):
            if not SKIP_FRAMES.match(m.group(1)):
                return m.group(1)
    in_trace = False
    for line in lines:
        s = line.strip()
        if s in ("Call Trace:", "<TASK>", "<IRQ>") or s.startswith("backtrace"):
            in_trace = True
            continue
        if in_trace and (m := FRAME_RE.match(line)) and not line.strip().startswith("?"):
            if not SKIP_FRAMES.match(m.group(1)):
                return m.group(1)
    return None


def _normalise(text: str) -> str:
    text = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", text)
    text = HEX_RE.sub("ADDR", text)
    return NUM_RE.sub("N", text).strip()


def _lock_after(lines: list[str], heading: str) -> re.Match | None:
    """The lock line that follows `heading` in a lockdep report."""
    for i, line in enumerate(lines[:-1]):
        if line.strip().endswith(heading):
            return next((m for nxt in lines[i + 1:i + 3] if (m := LOCK_RE.search(nxt))), None)
    return None


def _lockdep_title(text: str, lines: list[str]) -> str | None:
    """`<report>: <held lock> -> <wanted lock> in <function taking it>` for reports that name
    the lock a task holds and the one it is trying to take (circular or recursive locking);
    lock classes lose their `#N` instance numbers, which depend on boot order."""
    wanted = _lock_after(lines, "is trying to acquire lock:")
    held = _lock_after(lines, "but task is already holding lock:")
    if not (wanted and held):
        return None
    return f"{text}: {_lock_class(held)} -> {_lock_class(wanted)} in {wanted.group(2)}"


def _lock_class(m: re.Match) -> str:
    return re.sub(r"#\d+$", "", m.group(1))


def title(s: Splat) -> str:
    """A stable one-line title (syzkaller style: no PIDs, addresses or line numbers)."""
    first = s.lines[0].strip()
    where = _first_frame(s.lines)
    suffix = f" in {where}" if where else ""
    if s.kind == "warning":
        m = re.search(r" at \S+ ([A-Za-z_][\w.]*)\+0x", first)
        return f"WARNING in {m.group(1) if m else where or '?'}"
    if s.kind == "bug" and first.startswith("kernel BUG"):
        return f"kernel BUG{suffix}"
    if s.kind == "bug":  # "BUG: scheduling while atomic: sh/65/0x2": drop the details
        return f"{_normalise(': '.join(first.split(': ', 2)[:2]))}{suffix}"
    if s.kind == "oops":
        head = re.sub(r",? address: .*$", "", first)
        return f"{_normalise(head)}{suffix}"
    if s.kind == "gpf":
        return f"general protection fault{suffix}"
    if s.kind == "kasan":
        m = re.search(r"KASAN: ([\w-]+)", first)
        access = next((ln.split()[0] for ln in s.lines if re.match(r"^(Read|Write) of", ln)), "")
        return f"KASAN: {m.group(1) if m else '?'} {access}{suffix}".replace("  ", " ")
    if s.kind == "ubsan":
        m = re.match(r"UBSAN: ([\w-]+)", first)
        return f"UBSAN: {m.group(1) if m else '?'}{suffix}"
    if s.kind == "lockdep":
        text = re.sub(r"^(WARNING|BUG): ", "", first).rstrip("!. ")
        return _lockdep_title(text, s.lines) or f"{text}{suffix}"
    if s.kind == "hung-task":
        return f"INFO: task hung{suffix}"
    if s.kind == "rcu-stall":
        return f"INFO: rcu detected stall{suffix}"
    if s.kind == "soft-lockup":
        return f"BUG: soft lockup{suffix}"
    if s.kind == "hard-lockup":
        return f"hard LOCKUP{suffix}"
    if s.kind == "kmemleak":
        return f"memory leak{suffix}" if where else _normalise(first)
    if s.kind == "panic":
        return f"Kernel panic - not syncing: {_normalise(first.split('not syncing:', 1)[1])}"
    return f"{_normalise(first)}{suffix}"
