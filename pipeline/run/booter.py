"""The boot workers of a run: each built step is booted in a worker thread, started in step
order, while the main thread goes on building the next steps (a TCG guest has one vCPU; the
build takes both cores when it has them alone).

Reads what pipeline/run/boot_steps.py's run_job reads (the step's directory, the suites);
writes the record, but only ever from the main thread, and says in the record which boot is
under way (`booting`: the first step handed to the workers whose result is not in the record
yet, the one a worker boots or is about to; `current` stays the main thread's stage).
Turned off (`--no-overlap`), submit boots the step at once in the main thread, as the walk
did before.

A step handed over with a `take` (pipeline/run/walk.py: its objects may equal the previous
step's, whose results it then takes instead of booting) waits, in order, until every boot
handed over before it is in the record; then `take` decides, in the main thread, and the step
is booted only if it says no. The steps behind it wait behind it.

One writer of the record: the worker never touches it. It hands each result back over a queue
and the main thread applies it (boot_steps.apply_result) and writes the record whenever it
passes by (collect: as each step starts, while make compiles, as each step ends) and at the end
(drain). The other way, every write through one lock-guarded writer, was not taken: the main
thread changes the record in many places (each step's entry, stages, `current`), every one of
them would have to take the lock, and one that did not would let the worker's json.dumps meet a
dict changing under it; handing results back keeps every change to the record in one thread,
with no lock around any of them.

Guests at once: up to `boots` (default_boots), beside the builds too. On the default series
here (warm, 2 cores) a gate that kept to one guest until the last build gained nothing: 269 s
against 265 s without it, one run each (the builds are short; the tip's build, its boot and the
base's confirmation are the critical path), so there is none. Of the boots ready to start, one
that runs more suites (the base and the tip, with the suites whose steps rule is "ends") goes
first, so that the longest boot does not run alone at the end while the other core waits. Each
boot runs in a worker thread of its own; results are applied in step order whatever order they
end in, so the record reads as if the boots had run one after the other. Leaving on an
exception (Ctrl-C and SIGTERM reach the main thread only, as KeyboardInterrupt; or an error):
every guest under way is killed (vng's `stop` event: its process group goes), the boots that
had finished are applied, and the boots cut short and those not started keep the status `not-
run` with `interrupted: true` and a detail (a later run boots them again:
pipeline/record/keys.py); `booting` is left naming the one cut short (the first in step order,
if more), so that the run's error says so.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.boot import vng
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record
from pipeline.run import boot_steps
from pipeline.run.boot_steps import BootJob

NOT_STARTED = "interrupted before it booted"
Outcome = dict | BaseException | None  # a result, what the boot raised, or None: not started
MAX_BOOTS = 2  # guests at once by default, whatever the cores: each takes its memory too


def default_boots() -> int:
    """Guests at once while nothing builds: one per host core (a guest has one vCPU), at most
    MAX_BOOTS."""
    return max(1, min(MAX_BOOTS, os.cpu_count() or 1))


class Booter:
    """Boots steps in worker threads, applied in step order; every record write stays in the
    caller's thread."""

    def __init__(self, opts: RunOptions, rec: dict, run_dir: Path, progress: Progress) -> None:
        self.opts, self.rec, self.run_dir, self.progress = opts, rec, run_dir, progress
        self._boots = max(1, opts.boots or default_boots())
        self._jobs: queue.Queue[BootJob | None] = queue.Queue()  # given to the workers
        self._done: queue.Queue[tuple[BootJob, Outcome]] = queue.Queue()  # as they end
        self._stop = threading.Event()
        self._pending: deque[BootJob] = deque()  # prepared, in step order, not yet applied
        self._queued: deque[BootJob] = deque()  # prepared, not yet given to a worker
        self._ended: dict[int, Outcome] = {}  # id(job): its outcome, not yet applied
        self._running = 0  # given to the workers and not ended
        self._waiting: deque[tuple[dict, Callable[[], bool] | None]] = deque()  # not yet sent
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Booter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:  # also when the drain itself is cut short (a Ctrl-C while it waits)
            self.stop()

    def submit(self, step: dict, take: Callable[[], bool] | None = None) -> None:
        """Boot this built step (its entry in the record) after those handed over before it;
        with `take`, only if take() says no once their boots are in the record."""
        if not self.opts.overlap:
            if take is None or not take():
                boot_steps.boot_step(self.opts, self.rec, step, self.run_dir, self.progress)
            return
        self._waiting.append((step, take))
        self._send()
        self._mark_booting()

    def _send(self) -> None:
        """Hand the waiting steps to the worker, in order, as far as their `take` allows."""
        while self._waiting:
            step, take = self._waiting[0]
            if take is not None:
                if self._pending:
                    return  # it needs every earlier boot in the record first
                if take():
                    self._waiting.popleft()
                    continue
            self._waiting.popleft()
            job = boot_steps.prepare(self.opts, self.rec, step)
            self._pending.append(job)
            self._queued.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        """Give queued boots to workers, as many as may run at once, those that run the most
        suites first (in step order among equals)."""
        while self._queued and self._running < self._boots and not self._stop.is_set():
            if len(self._threads) <= self._running:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"kpipe-boot-{len(self._threads)}")
                thread.start()
                self._threads.append(thread)
            job = max(self._queued, key=lambda j: len(j.names))  # the first of the longest
            self._queued.remove(job)
            self._running += 1
            self._jobs.put(job)

    def collect(self) -> None:
        """Apply the boots that ended, and write the record when it changed (cheap otherwise:
        make's progress calls it for every file compiled)."""
        self._reap()
        changed = False
        for job, outcome in self._in_order():
            self._apply(job, outcome)
            changed = True
        self._send()
        if self._mark_booting() or changed:
            record.write(self.run_dir, self.rec)

    def drain(self) -> None:
        """Wait for every boot handed over, applying each as it ends; the seconds waited are
        the record's stage `boot-wait`."""
        t0 = time.monotonic()
        waited = bool(self._pending or self._waiting)
        self._send()
        while self._pending:
            try:
                self._ended_one(*self._done.get(timeout=0.5))
            except queue.Empty:
                continue
            self._reap()
            for job, outcome in self._in_order():
                self._apply(job, outcome)
            self._send()
            self._mark_booting()
            record.write(self.run_dir, self.rec)
        self._end_threads()
        if waited:
            record.stage_time(self.rec, "boot-wait", t0)

    def stop(self) -> None:
        """Kill the boot under way, leave those not started, apply those that ended (the
        module's docstring says how each is recorded). Safe to call more than once."""
        for step, _take in self._waiting:  # never handed to the worker
            step["boot"] = boot_steps.not_booted(NOT_STARTED)
        self._waiting.clear()
        self._queued.clear()  # never given to a worker: not started
        if not self._threads:
            return
        self._stop.set()
        self._end_threads()
        self._reap()
        cut = None
        while self._pending:
            job = self._pending.popleft()
            outcome = self._ended.pop(id(job), None)
            if isinstance(outcome, dict):
                boot_steps.apply_result(self.rec, job, outcome, self.progress)
            else:
                cut = cut or (job if outcome is not None else None)
                self._interrupted(job, outcome)
        self.rec.pop("booting", None)
        if cut is not None:
            self.rec["booting"] = _where(cut)

    def _reap(self) -> None:
        """Take in the boots the workers have handed back so far (waits for none)."""
        while True:
            try:
                self._ended_one(*self._done.get_nowait())
            except queue.Empty:
                return

    def _ended_one(self, job: BootJob, outcome: Outcome) -> None:
        self._running -= 1
        self._ended[id(job)] = outcome
        self._dispatch()  # its guest is gone: another may start

    def _in_order(self) -> Iterator[tuple[BootJob, Outcome]]:
        """The ended boots that may be applied now: in step order, each once every boot
        before it is applied (the caller applies each before asking for the next)."""
        while self._pending and id(self._pending[0]) in self._ended:
            yield self._pending[0], self._ended.pop(id(self._pending[0]))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._stop.is_set():
                self._done.put((job, None))
                continue
            try:
                outcome: Outcome = boot_steps.run_job(job, self.run_dir, self.progress,
                                                      self._stop)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome = exc
            self._done.put((job, outcome))

    def _end_threads(self) -> None:
        """Let the workers finish (a set stop makes that quick: their guests are killed) and
        wait for them; a second Ctrl-C meanwhile does not leave a guest running."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            while thread.is_alive():
                try:
                    thread.join(0.5)
                except KeyboardInterrupt:
                    self._stop.set()
        self._threads = []

    def _apply(self, job: BootJob, outcome: Outcome) -> None:
        self._pending.popleft()  # _in_order gives the first pending job's outcome only
        if isinstance(outcome, dict):
            boot_steps.apply_result(self.rec, job, outcome, self.progress)
            return
        self._interrupted(job, outcome)
        if outcome is not None:
            raise outcome  # the boot's own error (a full disk, a bug): the run ends on it

    def _interrupted(self, job: BootJob, outcome: BaseException | None) -> None:
        if outcome is None:
            detail = NOT_STARTED
        elif isinstance(outcome, vng.Interrupted):
            detail = boot_steps.KILLED
        else:
            detail = f"interrupted: the boot failed: {outcome!r}"
        job.step["boot"] = boot_steps.not_booted(detail)

    def _mark_booting(self) -> bool:
        """Say in the record which step's boot is under way (or about to be); True when that
        changed."""
        want = _where(self._pending[0]) if self._pending else None
        if self.rec.get("booting") == want:
            return False
        if want is None:
            self.rec.pop("booting", None)
        else:
            self.rec["booting"] = want
        return True


def _where(job: BootJob) -> dict:
    return {"step": job.who["index"], "config": job.who["config"], "stage": "boot"}
