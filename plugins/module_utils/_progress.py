# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of long work on a host, written there by the work and read by the controller while it runs.

Two sides (standard library only):

- ``ProgressFile``, in a module on the host: how many bytes of how many are done, the file being fetched and the
  rate over the last seconds, written as one JSON object to a file (replaced atomically, at most once a second).
  ``model_download`` writes it while it fetches.
- ``download_line``, ``build_step`` and ``build_line``, in the ``await_progress`` action on the controller: the
  one line a person reads per host and job - ``43% 104.2/240.1 MB at 12.3 MB/s, ETA 11 s`` for a download (from the
  JSON object), ``step 5/12: RUN cmake ... (3 min 20 s)`` for an image build (from the end of ``docker build``'s
  output, the classic builder's ``Step 5/12 : RUN ...`` or BuildKit's ``#7 [build 3/6] RUN ...``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time

PROGRESS_VERSION = 1
RATE_WINDOW = 10.0  # seconds of samples the rate is taken over: steady, yet quick to show a stall
WRITE_EVERY = 1.0  # seconds between two writes of the file
STEP_WIDTH = 72  # characters of a build step's instruction shown

# The classic builder: "Step 5/12 : RUN cmake -B build ...".
_CLASSIC_STEP = re.compile(r"^Step (?P<n>\d+)/(?P<total>\d+) : (?P<instruction>.*)$")
# BuildKit (--progress=plain): "#7 [build 3/6] RUN cmake ...", "#9 [2/3] COPY ...", "#12 exporting to image".
_BUILDKIT_STEP = re.compile(r"^#\d+ (?:\[(?P<stage>[^\]]*?)\s*(?P<n>\d+)/(?P<total>\d+)\] (?P<instruction>.*)"
                            r"|(?P<export>exporting to image))$")
# What CMake's generated Makefiles (and ninja) print while they compile: "[ 14%] Building C object ...", BuildKit
# puts "#7 12.97 " before it.
_COMPILE_PERCENT = re.compile(r"\[\s*(?P<percent>\d{1,3})%\]")
# The context going to the engine, before the first step: "Sending build context to Docker daemon  876.1MB" (classic),
# "#5 [internal] load build context" then "#5 transferring context: 876.12MB 12.1s" (BuildKit).
_CONTEXT = re.compile(r"^(?:Sending build context to Docker daemon\s+(?P<size>\S+)"
                      r"|#\d+ \[internal\] load build context"
                      r"|#\d+ transferring context: (?P<sent>\S+).*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The same step lines for grep -E on the host: the last one is read from the whole log, as a step that compiles for
# half an hour is tens of thousands of lines back from the log's end.
STEP_LINE_ERE = r"^(Step [0-9]+/[0-9]+ : |#[0-9]+ \[[^]]*[0-9]+/[0-9]+\] |#[0-9]+ exporting to image)"


class ProgressFile:
    """Bytes done of a transfer, written to ``path`` as JSON for another process to read while it runs.

    ``start(total, done)`` begins (``total`` may be ``None`` when sizes are unknown), ``add(count, name)`` counts
    bytes as they arrive, ``close()`` removes the file. Writes happen at most every ``every`` seconds (``add``)
    and always on ``start``; each replaces the file atomically, so a reader never sees half an object. A failure
    to write is ignored: progress is for people watching, the transfer must not fail for it.
    """

    def __init__(self, path, clock=time.monotonic, wall=time.time, every=WRITE_EVERY, window=RATE_WINDOW):
        self.path = path
        self.clock = clock
        self.wall = wall
        self.every = every
        self.window = window
        self.total = None
        self.done = 0
        self.name = None
        self.samples = []
        self.written_at = None

    def start(self, total, done=0):
        self.total = total
        self.done = done
        self.samples = [(self.clock(), done)]
        self.write()

    def add(self, count, name=None):
        self.done += count
        if name is not None:
            self.name = name
        now = self.clock()
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.pop(0)
        if self.written_at is None or now - self.written_at >= self.every:
            self.write()

    def rate(self):
        """Bytes per second over the samples of the last ``window`` seconds; ``None`` before there are two."""
        if len(self.samples) < 2:
            return None
        (first, start), (last, end) = self.samples[0], self.samples[-1]
        return (end - start) / (last - first) if last > first else None

    def snapshot(self):
        rate = self.rate()
        return {"version": PROGRESS_VERSION, "done": self.done, "total": self.total, "file": self.name,
                "rate": round(rate, 1) if rate is not None else None, "updated": round(self.wall(), 3)}

    def write(self):
        self.written_at = self.clock()
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self.snapshot(), handle, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.path)
        except OSError:
            _unlink(tmp)

    def close(self):
        _unlink(self.path)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def read_progress(text):
    """The object a ProgressFile wrote, from the file's text; ``None`` when absent, partial or of another version."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != PROGRESS_VERSION or not isinstance(data.get("done"), int):
        return None
    return data


def human_bytes(count):
    """Decimal units, as the Hugging Face hub shows sizes: ``104200000`` -> ``'104.2 MB'``."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return "%d %s" % (value, unit) if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1000.0
    return "%d B" % count  # not reached


def _pair(done, total):
    """``'104.2/240.1 MB'`` when both have the same unit, else ``'980.0 MB/1.2 GB'``."""
    first, second = human_bytes(done), human_bytes(total)
    if first.split(" ")[1] == second.split(" ")[1] and not first.endswith(" B"):
        return "%s/%s" % (first.split(" ")[0], second)
    return "%s/%s" % (first, second)


def duration(seconds):
    """``11`` -> ``'11 s'``, ``200`` -> ``'3 min 20 s'``, ``7500`` -> ``'2 h 05 min'``."""
    seconds = int(round(max(0, seconds)))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % (seconds // 60, seconds % 60)
    return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)


def eta(data):
    """Seconds left at the current rate, or ``None`` when the total or the rate is unknown (or the rate is 0)."""
    total, rate = data.get("total"), data.get("rate")
    if not total or not rate or rate <= 0:
        return None
    return max(0, total - data["done"]) / rate


def download_line(data, elapsed):
    """What a download is at: ``'43% 104.2/240.1 MB at 12.3 MB/s, ETA 11 s'``.

    ``data`` is what ``read_progress`` returned (``None`` when the module has written nothing yet: it is still
    asking the hub, or checking the files already there); ``elapsed`` the seconds since the job began.
    """
    if data is None:
        return "preparing (%s)" % duration(elapsed)
    total, done, rate = data.get("total"), data["done"], data.get("rate")
    if total:
        line = "%d%% %s" % (min(100, done * 100 // total), _pair(done, total))
    else:
        line = human_bytes(done)
    if rate is None:
        return line
    if rate <= 0:
        return "%s, stalled" % line
    line = "%s at %s/s" % (line, human_bytes(rate))
    left = eta(data)
    return line if left is None else "%s, ETA %s" % (line, duration(left))


def download_done_line(result):
    """The last line of a download job: ``'done, 240.1 MB in 20 s (12.0 MB/s)'``, or why it failed."""
    if result.get("failed"):
        return "failed"
    fetched = result.get("bytes_fetched") or 0
    if not fetched and result.get("bytes_to_fetch"):
        return "would fetch %s (check mode)" % human_bytes(result["bytes_to_fetch"])
    if not fetched:
        return "done, nothing to fetch"
    line = "done, %s in %s" % (human_bytes(fetched), duration(result.get("elapsed_seconds") or 0))
    rate = result.get("throughput_bytes_per_second")
    return "%s (%s/s)" % (line, human_bytes(rate)) if rate else line


def plain(text):
    """``text`` without the terminal's colour codes (the classic builder colours what a step writes to stderr)."""
    return _ANSI.sub("", text or "")


def build_step(text):
    """The step a build is at, from the end of its output: ``'step 5/12: RUN cmake ...'``, or ``None``.

    The classic builder prints ``Step 5/12 : RUN cmake ...`` as a step begins; BuildKit with ``--progress=plain``
    prints ``#7 [build 3/6] RUN cmake ...`` (``build`` being the stage) as it starts a step, and ``#12 exporting to
    image`` at the end. The last such line is the step running now (BuildKit may run steps of two stages at once:
    the last one started is shown). When the step compiles with CMake, its last ``[ 14%]`` comes with it:
    ``'step 6/30 at 14%: RUN cmake ...'``.
    """
    percent = None
    for line in reversed(plain(text).splitlines()):
        line = line.strip()
        match = _CLASSIC_STEP.match(line) or _BUILDKIT_STEP.match(line)
        sending = _CONTEXT.match(line) if not match else None
        if sending:
            size = sending.group("size") or sending.group("sent")
            return "sending the build context%s" % (" (%s so far)" % size if size else "")
        if not match:
            found = _COMPILE_PERCENT.search(line) if percent is None else None
            if found:
                percent = found.group("percent")
            continue
        groups = match.groupdict()
        if groups.get("export"):
            return groups["export"]
        instruction = " ".join(groups["instruction"].split())
        if len(instruction) > STEP_WIDTH:
            instruction = instruction[:STEP_WIDTH - 3] + "..."
        stage = groups.get("stage")
        return "%sstep %s/%s%s: %s" % ("%s " % stage if stage else "", groups["n"], groups["total"],
                                       " at %s%%" % percent if percent is not None else "", instruction)
    return None


def build_log_command(quoted_path, tail_bytes):
    """A shell command that prints what ``build_step`` needs of a build log: its last step line, wherever it is,
    then the log's last ``tail_bytes`` (for the compile percentage, and the last lines of a failed build)."""
    return "{ grep -a -E %s %s | tail -n 1; tail -c %d -- %s; }" % (
        shlex.quote(STEP_LINE_ERE), quoted_path, tail_bytes, quoted_path)


def build_line(text, elapsed):
    """What a build is at: ``'step 5/12: RUN cmake -B build ... (3 min 20 s)'``."""
    return "%s (%s)" % (build_step(text) or "starting", duration(elapsed))
