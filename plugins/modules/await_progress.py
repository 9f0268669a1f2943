#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: await_progress
short_description: Wait for async jobs, showing how far each one is, and return their results
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Waits for the jobs a task started with C(async) and C(poll=0) (its registered result, or the C(results) of its
    loop) and returns their results in C(results), as the same task without C(async) would have (each with its
    loop item). The task fails when a job failed, naming it.
  - "While they run, prints one line per job every O(interval) seconds, named after the host and the job -
    C([gpu-1] gemma-3-270m: 43% 104.2/240.1 MB at 12.3 MB/s, ETA 11 s) for a download (O(progress_files)),
    C([gpu-1] llama.cpp: step 5/12: RUN cmake ...) and the time so far for an image build (O(build_logs)), and a last line
    when a job that was shown ends. The lines are printed by Ansible's display, so they show with any stdout callback
    at any verbosity; under the linear strategy every host waits at once and their lines interleave."
  - The progress is read on the host through the connection (one shell command per round, with become when the task
    has it); the jobs' status with M(ansible.builtin.async_status), whose job files it removes once read.
  - A job that the task did not start (skipped, failed to start, or run without C(async)) is returned as it is.
  - This is an action plugin; it runs on the controller.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Waits for jobs started in check mode just the same; they report what they would do.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Changes nothing itself; RV(changed) says whether a job changed something.
options:
  jobs:
    description:
      - The registered results of the C(async) task - C(REGISTERED.results) for a loop, C([REGISTERED]) otherwise.
    type: list
    elements: raw
    required: true
  labels:
    description:
      - What to call each job in its lines, one per job.
      - Defaults to the job's loop item - its C(name) when the item is a dict with one, else the item.
    type: list
    elements: str
  progress_files:
    description:
      - One per job, the file on the host that shows its progress as M(gpufleet.inference.model_download) writes it
        (its O(gpufleet.inference.model_download#module:progress_file)).
      - A job with no file yet is C(preparing).
    type: list
    elements: str
  build_logs:
    description:
      - One per job, the file on the host that receives the output of C(docker build). The line shows the step the
        build is at (the classic builder's C(Step 5/12 :) or BuildKit's C(#7 [build 3/6])) and the time so far.
      - A failed job's result gets the last lines of its log as RV(results[].build_log_tail).
    type: list
    elements: str
  interval:
    description:
      - Seconds between two lines of a running job.
    type: float
    default: 10
notes:
  - The jobs are asked for their status at growing intervals (a quarter of a second, then twice as long each time,
    up to O(interval)), so a job that ends early is not waited for long.
seealso:
  - module: ansible.builtin.async_status
  - name: Asynchronous actions and polling
    description: How C(async) and C(poll) start a task in the background.
    link: https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_async.html
"""

EXAMPLES = r"""
- name: Start the downloads, one job per model
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/{{ item.name }}
    hf_repo: "{{ item.repo }}"
    progress_file: /opt/gpufleet/models/.{{ item.name }}.progress.json
  loop: "{{ models }}"
  async: 86400
  poll: 0
  register: downloads

- name: Wait for them, showing percent, rate and ETA
  gpufleet.inference.await_progress:
    jobs: "{{ downloads.results }}"
    progress_files: "{{ models | map(attribute='name') | map('regex_replace', '^(.*)$', '/opt/gpufleet/models/.\\1.progress.json') }}"
    interval: 5
  register: models

- name: Build an image in the background, its output in a log
  ansible.builtin.shell:
    cmd: docker build -t example:1 /srv/build > /srv/build.log 2>&1
  async: 7200
  poll: 0
  register: build
  changed_when: true

- name: Wait for the build, showing its step
  gpufleet.inference.await_progress:
    jobs: ["{{ build }}"]
    labels: [example:1]
    build_logs: [/srv/build.log]
"""

RETURN = r"""
results:
  description:
    - The result of each job, in the order of O(jobs), as the task would have returned it without C(async) (with
      the keys of its loop, such as C(item)).
  returned: always
  type: list
  elements: dict
  contains:
    build_log_tail:
      description: The last lines of the build's output, for a failed job with a O(build_logs) file.
      returned: when the job failed and O(build_logs) is used
      type: list
      elements: str
changed:
  description: Whether a job changed something.
  returned: always
  type: bool
msg:
  description: How many jobs failed, and which.
  returned: failure
  type: str
  sample: "1 of 2 jobs failed: gemma-3-270m"
"""
