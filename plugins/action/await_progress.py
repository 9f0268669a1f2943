# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for async jobs on a host, showing how far each one is, and return their results.

The jobs' status comes from ``async_status``; their progress from files on the host, read through the connection
(so it works for remote hosts and with become) with one shell command per round: a download's progress file
(``model_download``'s ``progress_file``) or the end of a build's output. The lines are printed with Display, so they
show under any stdout callback at any verbosity, and each names its host: under the linear strategy this action runs
for every host at once, and their lines interleave.
"""

from __future__ import annotations

import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpufleet.inference.plugins.module_utils import _progress

display = Display()

# What async_status and the async start add to a job's result; the results returned are the jobs' own.
ASYNC_KEYS = ("ansible_job_id", "results_file", "started", "finished")
FIRST_POLL = 0.25  # seconds before the first look at the jobs; each look waits twice as long, up to interval
BUILD_TAIL_BYTES = 16384  # how much of the end of a build's output is read (with its last step line, from anywhere)
BUILD_TAIL_LINES = 25
RECORD_SEPARATOR = "\x1e"


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    ARGUMENT_SPEC = dict(
        jobs=dict(type="list", elements="raw", required=True),
        labels=dict(type="list", elements="str"),
        progress_files=dict(type="list", elements="str"),
        build_logs=dict(type="list", elements="str"),
        interval=dict(type="float", default=10.0),
    )

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC,
                                                       mutually_exclusive=[("progress_files", "build_logs")])
        jobs = args["jobs"]
        for option in ("labels", "progress_files", "build_logs"):
            if args[option] is not None and len(args[option]) != len(jobs):
                raise AnsibleActionFail("%s must have one entry per job: %d for %d jobs"
                                        % (option, len(args[option]), len(jobs)))
        if args["interval"] <= 0:
            raise AnsibleActionFail("interval must be more than 0 seconds, got %s" % args["interval"])
        for index, job in enumerate(jobs):
            if not isinstance(job, dict):
                raise AnsibleActionFail("jobs[%d] must be the result of a task (a dict), got %r" % (index, job))

        self._host = task_vars.get("inventory_hostname", "?")
        self._task_vars = task_vars
        self._labels = args["labels"] or [job_label(job, index) for index, job in enumerate(jobs)]
        self._files = args["progress_files"] or args["build_logs"]
        self._build = args["build_logs"] is not None
        self._async_dir = None

        results = self._wait(jobs, args["interval"])
        result["results"] = results
        result["changed"] = any(r.get("changed") for r in results)
        failed = [self._labels[i] for i, r in enumerate(results) if r.get("failed")]
        if failed:
            result["failed"] = True
            result["msg"] = "%d of %d jobs failed: %s" % (len(failed), len(results), ", ".join(failed))
        elif results and all(r.get("skipped") for r in results):
            result["skipped"] = True
        return result

    # ---- waiting ------------------------------------------------------------------------------

    def _wait(self, jobs, interval):
        """Poll until every job ended; print each running job's progress every ``interval`` seconds."""
        results = list(jobs)
        pending = [i for i, job in enumerate(jobs) if job.get("ansible_job_id")]
        shown = set()
        began = time.monotonic()
        last_shown = began
        delay = FIRST_POLL
        while pending:
            for index in list(pending):
                status = self._status(jobs[index]["ansible_job_id"])
                if not status.get("finished") and not status.get("failed"):
                    continue
                pending.remove(index)
                results[index] = self._final(jobs[index], status, index)
                if index in shown:
                    self._say(index, self._done_line(results[index], time.monotonic() - began))
            if not pending:
                break
            now = time.monotonic()
            if now - last_shown >= interval:
                last_shown = now
                for index, text in zip(pending, self._read([self._files[i] if self._files else None for i in pending])):
                    shown.add(index)
                    self._say(index, self._line(text, now - began))
            time.sleep(min(delay, max(0.05, last_shown + interval - time.monotonic())))
            delay = min(delay * 2, interval)
        return results

    def _say(self, index, line):
        display.display("[%s] %s: %s" % (self._host, self._labels[index], line))

    def _line(self, text, elapsed):
        if self._build:
            return _progress.build_line(text, elapsed)
        return _progress.download_line(_progress.read_progress(text), elapsed)

    def _done_line(self, result, elapsed):
        if self._build:
            return "%s after %s" % ("failed" if result.get("failed") else "done", _progress.duration(elapsed))
        return _progress.download_done_line(result)

    # ---- the host -----------------------------------------------------------------------------

    def _status(self, jid):
        if self._async_dir is None:
            self._async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=self._task_vars,
                                    module_args=dict(jid=jid, mode="status", _async_dir=self._async_dir))

    def _cleanup(self, jid):
        self._execute_module(module_name="ansible.legacy.async_status", task_vars=self._task_vars,
                             module_args=dict(jid=jid, mode="cleanup", _async_dir=self._async_dir))

    def _read(self, paths):
        """The text of each file (a build log: its end), ``''`` when absent or unreadable; one command for all."""
        named = [path for path in paths if path]
        if not named:
            return ["" for path in paths]
        if self._build:
            readers = [_progress.build_log_command(shlex.quote(path), BUILD_TAIL_BYTES) for path in named]
        else:
            readers = ["cat -- %s" % shlex.quote(path) for path in named]
        script = "; ".join("printf '\\036'; %s 2>/dev/null" % reader for reader in readers)
        res = self._low_level_execute_command("sh -c %s" % shlex.quote(script + "; true"), sudoable=True)
        texts = iter(to_text(res.get("stdout", ""), errors="surrogate_or_replace").split(RECORD_SEPARATOR)[1:])
        return [next(texts, "") if path else "" for path in paths]

    def _final(self, job, status, index):
        """The job's result as the same task without async would have returned it (loop keys kept)."""
        final = dict((k, v) for k, v in job.items() if k not in ASYNC_KEYS + ("changed",))
        final.update((k, v) for k, v in status.items() if k not in ASYNC_KEYS)
        if status.get("finished"):
            self._cleanup(job["ansible_job_id"])
        if self._build and final.get("failed") and self._files and self._files[index]:
            tail = _progress.plain(self._read([self._files[index]])[0]).splitlines()[-BUILD_TAIL_LINES:]
            final["build_log_tail"] = tail
            final["msg"] = "%s (the last lines of %s are in build_log_tail)" % (
                final.get("msg") or "the build failed", self._files[index])
        return final


def job_label(job, index):
    """What to call a job in its lines: its loop item (the item's ``name`` when it has one), else its place."""
    item = job.get("item")
    if isinstance(item, dict) and item.get("name"):
        return str(item["name"])
    if isinstance(item, (str, int)):
        return str(item)
    return "job %d" % (index + 1)
