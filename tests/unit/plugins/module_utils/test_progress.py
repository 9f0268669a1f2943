# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress of long work: the file a download keeps, and the lines a person reads from it or from a build's output."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _progress

MB = 1000 * 1000


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_file_has_bytes_total_file_and_the_recent_rate(tmp_path):
    clock = Clock()
    path = tmp_path / "m.progress.json"
    progress = _progress.ProgressFile(str(path), clock=clock, wall=lambda: 1700000000.0)

    progress.start(240 * MB, done=40 * MB)
    assert json.loads(path.read_text()) == {"version": 1, "done": 40 * MB, "total": 240 * MB, "file": None,
                                            "rate": None, "updated": 1700000000.0}
    for dummy in range(20):  # 10 MB/s for 20 s, then 2 MB/s for 10 s
        clock.now += 1
        progress.add(10 * MB, "model.gguf")
    for dummy in range(10):
        clock.now += 1
        progress.add(2 * MB, "model.gguf")

    data = _progress.read_progress(path.read_text())
    assert data["done"] == 260 * MB
    assert data["file"] == "model.gguf"
    assert data["rate"] == pytest.approx(2 * MB, rel=0.25)  # the last seconds, not the average since the start
    progress.close()
    assert not path.exists()


def test_progress_file_is_written_at_most_once_a_second(tmp_path):
    clock = Clock()
    path = tmp_path / "m.progress.json"
    progress = _progress.ProgressFile(str(path), clock=clock)
    progress.start(10 * MB)
    clock.now += 0.5
    progress.add(MB, "a")
    assert json.loads(path.read_text())["done"] == 0
    clock.now += 0.6
    progress.add(MB, "a")
    assert json.loads(path.read_text())["done"] == 2 * MB


def test_a_progress_file_that_cannot_be_written_does_not_stop_the_work(tmp_path):
    progress = _progress.ProgressFile(str(tmp_path / "missing" / "m.progress.json"))
    progress.start(MB)
    progress.add(MB, "a")
    progress.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 2, "done": 1}', '{"version": 1}'])
def test_unreadable_progress_is_none(text):
    assert _progress.read_progress(text) is None


@pytest.mark.parametrize("data, line", [
    ({"done": 104200000, "total": 240100000, "rate": 12300000}, "43% 104.2/240.1 MB at 12.3 MB/s, ETA 11 s"),
    ({"done": 980 * MB, "total": 1200 * MB, "rate": 50 * MB}, "81% 980.0 MB/1.2 GB at 50.0 MB/s, ETA 4 s"),
    ({"done": 0, "total": 4 * MB, "rate": None}, "0% 0 B/4.0 MB"),
    ({"done": 3 * MB, "total": None, "rate": 500000}, "3.0 MB at 500.0 kB/s"),
    ({"done": 30 * MB, "total": 40 * 1000 * MB, "rate": 0.0}, "0% 30.0 MB/40.0 GB, stalled"),
    ({"done": 2 * 1000 * MB, "total": 40 * 1000 * MB, "rate": 10 * MB}, "5% 2.0/40.0 GB at 10.0 MB/s, ETA 1 h 03 min"),
    ({"done": 5 * MB, "total": 4 * MB, "rate": MB}, "100% 5.0/4.0 MB at 1.0 MB/s, ETA 0 s"),
])
def test_download_line(data, line):
    assert _progress.download_line(data, 30) == line


def test_download_line_before_the_module_wrote_anything():
    assert _progress.download_line(None, 75) == "preparing (1 min 15 s)"


@pytest.mark.parametrize("result, line", [
    ({"bytes_fetched": 240100000, "elapsed_seconds": 20.2, "throughput_bytes_per_second": 12005000.0},
     "done, 240.1 MB in 20 s (12.0 MB/s)"),
    ({"bytes_fetched": 0, "bytes_to_fetch": 0}, "done, nothing to fetch"),
    ({"bytes_fetched": 0, "bytes_to_fetch": 4 * MB, "changed": True}, "would fetch 4.0 MB (check mode)"),
    ({"failed": True, "msg": "boom"}, "failed"),
])
def test_download_done_line(result, line):
    assert _progress.download_done_line(result) == line


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (11.4, "11 s"), (59.6, "1 min 00 s"), (200, "3 min 20 s"),
                                           (7500, "2 h 05 min"), (-3, "0 s")])
def test_duration(seconds, text):
    assert _progress.duration(seconds) == text


CLASSIC = """\
Sending build context to Docker daemon  2.048kB
Step 1/3 : FROM gpufleet/debian:bookworm
 ---> b604be1daf22
Step 2/3 : RUN sleep 1 && echo one
 ---> Running in 82835a471b0a
one
Removing intermediate container 82835a471b0a
 ---> 3a1ed51ba22e
Step 3/3 : RUN cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=121 -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF   -DGGML_BACKEND_DL=ON
 ---> Running in 7007d4cb2081
-- The C compiler identification is GNU 12.2.0
"""

BUILDKIT = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 321B done
#1 DONE 0.0s

#4 [build 1/6] FROM docker.io/gpufleet/debian:bookworm@sha256:0123
#4 DONE 0.0s

#7 [build 3/6] RUN cmake -B build -DGGML_VULKAN=ON
#7 0.412 -- The C compiler identification is GNU 12.2.0
#7 12.97 [ 14%] Building C object ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o
"""


@pytest.mark.parametrize("text, step", [
    (CLASSIC, "step 3/3: RUN cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=121 -DGG..."),  # 72 characters
    (CLASSIC.split("Step 3/3", maxsplit=1)[0], "step 2/3: RUN sleep 1 && echo one"),
    (BUILDKIT, "build step 3/6 at 14%: RUN cmake -B build -DGGML_VULKAN=ON"),
    (BUILDKIT.split("#7 12.97", maxsplit=1)[0], "build step 3/6: RUN cmake -B build -DGGML_VULKAN=ON"),
    (CLASSIC + "[  2%] Building C object ggml.c.o\n\x1b[91mwarning: x\n\x1b[0m[  3%] Building CXX object a.o\n",
     "step 3/3 at 3%: RUN cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=121 -DGG..."),
    # A percent printed by an earlier step is not this step's.
    ("Step 1/2 : RUN make\n[ 50%] Building a.o\nStep 2/2 : COPY a /a\n", "step 2/2: COPY a /a"),
    (BUILDKIT + "#8 [2/2] COPY --from=build /app /app\n#8 DONE 0.3s\n", "step 2/2: COPY --from=build /app /app"),
    (BUILDKIT + "#9 exporting to image\n#9 exporting layers 0.5s done\n#9 naming to docker.io/x:1 done\n",
     "exporting to image"),
    ("#1 [internal] load build definition from Dockerfile\n", None),
    ("DEPRECATED: The legacy builder is deprecated\nSending build context to Docker daemon  450.2MB\r",
     "sending the build context (450.2MB so far)"),
    ("#4 [internal] load build context\n", "sending the build context"),
    ("#4 [internal] load build context\n#4 transferring context: 301.99MB 5.0s\n",
     "sending the build context (301.99MB so far)"),
    ("", None),
])
def test_build_step(text, step):
    assert _progress.build_step(text) == step


def test_plain_removes_colour_codes():
    assert _progress.plain("\x1b[91mCMake Warning at x\x1b[0m\n") == "CMake Warning at x\n"


def test_build_line():
    assert _progress.build_line(CLASSIC.split("Step 3/3", maxsplit=1)[0], 200) == "step 2/3: RUN sleep 1 && echo one (3 min 20 s)"
    assert _progress.build_line("", 4) == "starting (4 s)"


@pytest.mark.parametrize("step_line, compile_line, step", [
    ("Step 6/30 : RUN cmake -S . -B build && cmake --build build", "[ 67%] Building CXX object src/llama-grammar.cpp.o",
     "step 6/30 at 67%: RUN cmake -S . -B build && cmake --build build"),
    ("#9 [build 5/7] RUN cmake --build build", "#9 512.3 [ 41%] Building CXX object ggml-cpu/ops.cpp.o",
     "build step 5/7 at 41%: RUN cmake --build build"),
])
def test_a_step_that_compiles_for_long_is_found_far_back_in_the_log(tmp_path, step_line, compile_line, step):
    """A CUDA or CPU-variants compile writes tens of thousands of lines after its step line: the host's reader
    finds the step line wherever it is, and the percentage at the end."""
    log = tmp_path / "build.log"
    filler = "[ 12%] Building C object ggml/src/CMakeFiles/ggml-cpu-haswell.dir/ggml-cpu/quants.c.o\n" * 40000
    log.write_text("Step 5/30 : COPY llama.cpp/ ./\n%s\n%s%s\n" % (step_line, filler, compile_line))
    text = subprocess.run(["sh", "-c", _progress.build_log_command(shlex.quote(str(log)), 16384)],
                          capture_output=True, text=True, check=True).stdout
    assert len(text) < 20000
    assert _progress.build_step(text) == step
    missing = subprocess.run(["sh", "-c", _progress.build_log_command(shlex.quote(str(tmp_path / "none.log")), 16384)
                              + " 2>/dev/null"], capture_output=True, text=True, check=False).stdout
    assert _progress.build_line(missing, 3) == "starting (3 s)"
