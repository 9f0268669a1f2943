#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: model_download
short_description: Download model files into a directory, verified and resumable
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Places model files under O(dest) from one of three sources - a Hugging Face repository (O(hf_repo)),
    a plain HTTP(S) URL (O(url), with O(sha256)) or a file or directory already on the managed host (O(src)).
  - Every file is verified before it gets its final name - LFS files of a repository against the sha256 the hub
    publishes, other repository files against their git blob id, URL downloads against O(sha256), copies against
    O(sha256) when given. A file that does not match is deleted and the task fails, naming the file and both hashes.
  - A file is written as C(.NAME.part) next to its final name and renamed only once verified, so a file under its
    final name is always complete.
  - A download that is interrupted (killed, connection lost) leaves its C(.part) file; the next run resumes it with an
    HTTP range request, provided the sidecar C(.NAME.part.json) shows it is the same remote file (else it starts
    again). Use C(retries)/C(until) on the task to retry within one play.
  - Each piece the network delivers is written to the C(.part) file as soon as it arrives, so even a C(SIGKILL) loses
    only what was still in the kernel's socket buffers (well under a megabyte per kill at 100 MB/s). The resumed
    file is verified as a whole - the part already on disk is read and hashed again.
  - Before any byte moves, the bytes still to fetch (less what C(.part) files already hold) are compared with the
    free space of O(dest); the task fails, with both sizes, before writing anything when they do not fit.
  - Verified files are noted in C(.gpufleet-verified.json) in O(dest) (size, mtime, sha256, source). A run that
    finds every file with its recorded size and mtime reads no file and moves no byte. A file that is present but not
    recorded is hashed once, and recorded when it is right.
  - Runs into the same O(dest) are serialised by a lock file, C(.gpufleet-download.lock), in O(dest).
  - The Hugging Face hub is asked about files, sizes, hashes and the commit with the C(huggingface_hub) Python library
    on the managed host; the files themselves are fetched by this module. O(url) and O(src) sources need only Python.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Reports the files and bytes that would be fetched; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  dest:
    description:
      - Directory to place the files in. Created when missing.
      - Files from O(hf_repo) keep their path inside the repository, files from a O(src) directory their path
        inside it.
    type: path
    required: true
  hf_repo:
    description:
      - Hugging Face repository id (C(ORG/NAME)) to fetch files from.
      - Without O(files), O(allow_patterns) or O(ignore_patterns), every file of the repository is fetched.
    type: str
  revision:
    description:
      - Branch, tag or commit sha of O(hf_repo). It is resolved to a commit once, and every file comes from that commit.
    type: str
    default: main
  files:
    description:
      - Paths of the files of O(hf_repo) to fetch.
      - Required with O(offline=true).
    type: list
    elements: str
  allow_patterns:
    description:
      - Only fetch the files of O(hf_repo) that match one of these glob patterns (as C(snapshot_download) matches them).
    type: list
    elements: str
  ignore_patterns:
    description:
      - Do not fetch the files of O(hf_repo) that match one of these glob patterns.
    type: list
    elements: str
  endpoint:
    description:
      - Base URL of the hub, for mirrors and air-gapped hubs.
      - Defaults to the host's E(HF_ENDPOINT), else V(https://huggingface.co).
    type: str
  token:
    description:
      - Hugging Face access token, for private and gated repositories. Sent only to the hub, never to the CDN it
        redirects downloads to.
      - Defaults to the token C(huggingface_hub) finds on the host (E(HF_TOKEN), C(hf auth login)).
    type: str
  offline:
    description:
      - Use no network at all. Succeeds when every file of O(files) (or the O(url) file) is in O(dest) as a previous
        run verified it, and fails naming the files that are missing otherwise.
    type: bool
    default: false
  url:
    description:
      - HTTP or HTTPS URL of a single file to fetch. Requires O(sha256).
      - It may carry credentials (C(https://USER:PASSWORD@HOST/...)) or a signature in its query string, so it is
        treated as a secret - Ansible masks it in all output, and the module reports and records it only without
        its user information, query string and fragment (RV(source_url)).
    type: str
  sha256:
    description:
      - Expected sha256 of the O(url) file (required with O(url)) or of the O(src) file (optional).
    type: str
  src:
    description:
      - A file or directory on the managed host (for example a shared mount) to copy into O(dest).
      - A directory is copied with its sub-directories.
    type: path
  filename:
    description:
      - Name of the file under O(dest), for O(url) and for a O(src) file.
      - Defaults to the last path segment of O(url), or the name of the O(src) file.
    type: str
  mode:
    description:
      - Permissions of the files placed under O(dest).
    type: raw
    default: '0644'
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock of O(dest) before failing.
    type: int
    default: 600
  timeout:
    description:
      - Timeout in seconds of each HTTP connection and read.
    type: int
    default: 60
  validate_certs:
    description:
      - Verify the TLS certificates of O(url) and of the files' download hosts.
      - Requests to the hub API go through C(huggingface_hub), which always verifies them.
    type: bool
    default: true
  progress_file:
    description:
      - A file to keep up to date, while files are fetched, with the bytes done, the bytes to fetch, the file being
        fetched and the rate over the last seconds (one JSON object, replaced at most once a second). It is removed
        when the run ends.
      - For a task run with C(async) - M(gpufleet.inference.await_progress) reads it and shows the progress.
      - Outside O(dest); written only while this run holds the lock of O(dest), and not at all when its directory
        is missing (progress is for watching, and the download does not fail for it).
    type: path
requirements:
  - huggingface_hub on the managed host, for O(hf_repo) sources (not with O(offline=true)); tested with 2.4
notes:
  - The token is never written to O(dest); the C(.part.json) sidecars hold hashes, sizes, ETags and URLs without
    their query strings.
seealso:
  - name: Hugging Face Hub HTTP API
    description: The hub endpoints C(huggingface_hub) uses to describe a repository.
    link: https://huggingface.co/docs/hub/api
"""

EXAMPLES = r"""
- name: One GGUF file of a repository
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/gemma-3-270m
    hf_repo: ggml-org/gemma-3-270m-it-GGUF
    revision: main
    files: [gemma-3-270m-it-Q4_K_M.gguf]
    token: "{{ hf_token | default(omit) }}"
  register: model
  retries: 3
  delay: 10
  until: model is succeeded

- name: The safetensors weights and configuration of a repository, from a mirror
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/qwen3-0.6b
    hf_repo: Qwen/Qwen3-0.6B
    allow_patterns: ["*.safetensors", "*.json", "tokenizer*"]
    endpoint: https://hf-mirror.internal.example

- name: A file from an HTTP server
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/tiny
    url: https://models.example.com/tiny/model-q8_0.gguf
    sha256: 0f5c0d6f4d0c7b6c2c1f9b1b9d8a2e5d0c4a3b2a1f0e9d8c7b6a5f4e3d2c1b0a

- name: A model already on a shared mount
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/llama
    src: /srv/share/models/llama-3.2-1b

- name: On an air-gapped host, make sure an earlier run left the files
  gpufleet.inference.model_download:
    dest: /opt/gpufleet/models/gemma-3-270m
    hf_repo: ggml-org/gemma-3-270m-it-GGUF
    files: [gemma-3-270m-it-Q4_K_M.gguf]
    offline: true
"""

RETURN = r"""
dest:
  description: The destination directory.
  returned: always
  type: str
  sample: /opt/gpufleet/models/gemma-3-270m
files:
  description: The files of the source, in O(dest).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Path of the file relative to O(dest).
      type: str
      sample: gemma-3-270m-it-Q4_K_M.gguf
    path:
      description: Absolute path of the file.
      type: str
      sample: /opt/gpufleet/models/gemma-3-270m/gemma-3-270m-it-Q4_K_M.gguf
    size:
      description: Size in bytes (in check mode, of a file still to fetch, its expected size when known).
      type: int
      sample: 253112704
    sha256:
      description: sha256 of the file (in check mode, of a file still to fetch, the expected one when known).
      type: str
      sample: 9a1e2f3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7
    fetched:
      description: Whether this run fetched (in check mode, would fetch) the file.
      type: bool
      sample: true
bytes_fetched:
  description: Bytes downloaded or copied by this run (V(0) in check mode).
  returned: success
  type: int
  sample: 253112704
bytes_to_fetch:
  description: Bytes the run had (in check mode, would have) to fetch, less what partial downloads already held.
  returned: success
  type: int
  sample: 253112704
elapsed_seconds:
  description: Time the module took, in seconds.
  returned: success
  type: float
  sample: 4.2
throughput_bytes_per_second:
  description: RV(bytes_fetched) divided by the time spent transferring them; V(0) when nothing moved.
  returned: success
  type: float
  sample: 63278176.0
source_url:
  description:
    - O(url) without its user information, query string and fragment (which may hold credentials or a signature).
  returned: success and O(url) is used
  type: str
  sample: https://models.example.com/tiny/model-q8_0.gguf
revision:
  description: The commit sha O(revision) resolved to (with O(offline=true), the one recorded by the run that fetched the files).
  returned: success and O(hf_repo) is used
  type: str
  sample: 0123456789abcdef0123456789abcdef01234567
"""

import os
import re
import time
from urllib.parse import unquote, urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils import _hf
from ansible_collections.gpufleet.inference.plugins.module_utils._progress import ProgressFile
from ansible_collections.gpufleet.inference.plugins.module_utils._download import (
    DownloadError,
    Downloader,
    FileSpec,
    HttpClient,
    RECORD_NAME,
    LOCK_NAME,
    redact_url,
    safe_name,
)

HF_ONLY = ("files", "allow_patterns", "ignore_patterns", "endpoint", "token")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
COLLECTION_VERSION = "0.1.0"


def url_secrets(url):
    """The parts of ``url`` that are credentials: the password of its user information and its query string."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    return [password, parts.query]


class ModelDownload:
    """Check the options, describe the files to place, let the Downloader place them, report."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.started = time.monotonic()
        self.revision = None
        # The password and the query string (a signature) of url are secrets on their own, too: an error
        # message may quote them without the rest of the URL that no_log masks.
        self.secrets = [value for value in url_secrets(self.params.get("url")) + [self.params.get("token")] if value]
        module.no_log_values.update(self.secrets)

    def fail(self, msg, **kwargs):
        url = self.params.get("url")
        if url:
            msg = msg.replace(url, redact_url(url))
        for secret in self.secrets:
            msg = msg.replace(secret, "********")
        self.module.fail_json(msg=msg, dest=self.params["dest"], **kwargs)

    def validate(self):
        p = self.params
        source = "hf_repo" if p["hf_repo"] else ("url" if p["url"] else "src")
        if source != "hf_repo":
            for option in HF_ONLY:
                if p[option]:
                    self.fail("%s can only be used with hf_repo" % option)
        if p["filename"] is not None and source == "hf_repo":
            self.fail("filename can only be used with url or a src file")
        if source == "url":
            if not p["sha256"]:
                self.fail("sha256 is required with url")
            if urlsplit(p["url"]).scheme not in ("http", "https") or not urlsplit(p["url"]).netloc:
                self.fail("url must be an http:// or https:// URL, got %s" % redact_url(p["url"]))
        if source == "hf_repo" and p["sha256"]:
            self.fail("sha256 can only be used with url or src; hf_repo files are checked against the hub's hashes")
        if p["sha256"] and not SHA256_RE.match(p["sha256"]):
            self.fail("sha256 must be 64 hexadecimal characters")
        for option in ("files",):
            for name in p[option] or []:
                try:
                    safe_name(name, option)
                except DownloadError as exc:
                    self.fail(to_native(exc))
        if p["offline"] and source == "hf_repo" and not p["files"]:
            self.fail("files is required with offline=true: the names of the files to find in dest")
        if p["lock_timeout"] < 0:
            self.fail("lock_timeout must be 0 or more seconds")
        if p["timeout"] <= 0:
            self.fail("timeout must be more than 0 seconds")
        if os.path.exists(p["dest"]) and not os.path.isdir(p["dest"]):
            self.fail("dest %s exists and is not a directory" % p["dest"])
        if p["progress_file"]:
            progress = os.path.abspath(p["progress_file"])
            if progress == os.path.abspath(p["dest"]) or progress.startswith(os.path.join(os.path.abspath(p["dest"]), "")):
                self.fail("progress_file %s must be outside dest %s: dest holds only the model's files"
                          % (p["progress_file"], p["dest"]))
        if source == "src":
            if not os.path.exists(p["src"]):
                self.fail("src %s does not exist" % p["src"])
            if os.path.isdir(p["src"]):
                if p["sha256"]:
                    self.fail("sha256 can only be used when src is a file, and %s is a directory" % p["src"])
                if p["filename"] is not None:
                    self.fail("filename can only be used when src is a file, and %s is a directory" % p["src"])
            elif not os.path.isfile(p["src"]):
                self.fail("src %s is neither a regular file nor a directory" % p["src"])
        return source

    def file_mode(self):
        """The mode as an int when it is octal (applied before the rename), else None (symbolic: applied after)."""
        mode = self.params["mode"]
        if isinstance(mode, int):
            return mode
        try:
            return int(str(mode), 8)
        except ValueError:
            return None

    # ---- sources ----------------------------------------------------------------------------

    def hf_specs(self):
        p = self.params
        if p["offline"]:
            return _hf.offline_specs(p["hf_repo"], p["revision"], p["files"])
        if not _hf.HAS_HF_HUB:
            self.fail(missing_required_lib("huggingface_hub"), exception=_hf.HF_HUB_IMPORT_ERROR)
        self.revision, specs = _hf.resolve(
            p["hf_repo"], p["revision"], endpoint=p["endpoint"], token=p["token"], files=p["files"],
            allow_patterns=p["allow_patterns"], ignore_patterns=p["ignore_patterns"], timeout=p["timeout"],
            library_version=COLLECTION_VERSION,
        )
        return specs

    def url_specs(self):
        p = self.params
        name = p["filename"]
        if name is None:
            name = unquote(urlsplit(p["url"]).path.rstrip("/").rsplit("/", 1)[-1])
            if not name:
                self.fail("url %s has no file name in its path; set filename" % redact_url(p["url"]))
        name = self.plain_name(name)
        # The recorded source leaves out credentials and query strings (signed URLs); sha256 is the identity.
        return [FileSpec(name, url=p["url"], sha256=p["sha256"], source={"type": "url", "url": redact_url(p["url"])})]

    def src_specs(self):
        p = self.params
        src = os.path.abspath(p["src"])
        if os.path.isfile(src):
            name = self.plain_name(p["filename"] if p["filename"] is not None else os.path.basename(src))
            return [self.src_spec(name, src)]
        specs = []
        for current, dirs, files in os.walk(src):
            dirs.sort()
            for base in sorted(files):
                path = os.path.join(current, base)
                rel = os.path.relpath(path, src).replace(os.sep, "/")
                if base in (RECORD_NAME, LOCK_NAME) or base.endswith((".part", ".part.json")) or not os.path.isfile(path):
                    continue
                specs.append(self.src_spec(safe_name(rel, "src"), path))
        if not specs:
            self.fail("src %s holds no file" % src)
        return specs

    def src_spec(self, name, path):
        st = os.stat(path)
        source = {"type": "src", "path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        sha256 = self.params["sha256"]

        def same_source(recorded):
            return recorded == source

        return FileSpec(name, src=path, size=st.st_size, sha256=sha256, source=source,
                        source_match=None if sha256 else same_source)

    def plain_name(self, name):
        option = "filename" if self.params["filename"] is not None else ("url" if self.params["url"] else "src")
        if "/" in name or name in (".", ".."):
            self.fail("%s: %r is not a plain file name" % (option, name))
        return safe_name(name, option)

    # ---- run --------------------------------------------------------------------------------

    def run(self):
        p = self.params
        source = self.validate()
        try:
            specs = {"hf_repo": self.hf_specs, "url": self.url_specs, "src": self.src_specs}[source]()
            downloader = Downloader(
                p["dest"],
                client=HttpClient(timeout=p["timeout"], validate_certs=p["validate_certs"]),
                file_mode=self.file_mode(),
                check_mode=self.module.check_mode,
                lock_timeout=p["lock_timeout"],
                label=p["hf_repo"] or (specs[0].name if source == "url" else p["src"]),
                progress=ProgressFile(p["progress_file"]) if p["progress_file"] else None,
            )
            plans = downloader.run(specs, offline=p["offline"])
        except DownloadError as exc:
            self.fail(to_native(exc))
        except OSError as exc:  # permissions, read-only file systems, a full disk mid-way
            self.fail("model_download failed in %s: %s" % (p["dest"], to_native(exc)))

        changed = False
        files = []
        for plan in plans:
            fetched = plan.fetched or (self.module.check_mode and plan.state == "fetch")
            changed = changed or fetched
            if os.path.isfile(plan.path) and not (self.module.check_mode and plan.state == "fetch"):
                changed = self.module.set_mode_if_different(plan.path, p["mode"], changed)
            entry = plan.entry or {}
            files.append({
                "name": plan.spec.name,
                "path": plan.path,
                "size": entry.get("size", plan.spec.size),
                "sha256": entry.get("sha256", plan.spec.sha256),
                "fetched": fetched,
            })

        if source == "hf_repo" and p["offline"]:
            commits = sorted(set((plan.entry.get("source") or {}).get("commit") for plan in plans))
            self.revision = commits[0] if len(commits) == 1 else None
        seconds = downloader.transfer_seconds
        result = {
            "changed": changed,
            "dest": p["dest"],
            "files": files,
            "bytes_fetched": downloader.bytes_fetched,
            "bytes_to_fetch": sum(plan.still_to_fetch for plan in plans),
            "elapsed_seconds": round(time.monotonic() - self.started, 3),
            "throughput_bytes_per_second": round(downloader.bytes_fetched / seconds, 1) if downloader.bytes_fetched and seconds > 0 else 0,
        }
        if source == "hf_repo":
            result["revision"] = self.revision
        if source == "url":
            result["source_url"] = redact_url(p["url"])
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            hf_repo=dict(type="str"),
            revision=dict(type="str", default="main"),
            files=dict(type="list", elements="str"),
            allow_patterns=dict(type="list", elements="str"),
            ignore_patterns=dict(type="list", elements="str"),
            endpoint=dict(type="str"),
            token=dict(type="str", no_log=True),
            offline=dict(type="bool", default=False),
            url=dict(type="str", no_log=True),  # signed URLs and user:password@ carry credentials
            sha256=dict(type="str"),
            src=dict(type="path"),
            filename=dict(type="str"),
            mode=dict(type="raw", default="0644"),
            lock_timeout=dict(type="int", default=600),
            timeout=dict(type="int", default=60),
            validate_certs=dict(type="bool", default=True),
            progress_file=dict(type="path"),
        ),
        mutually_exclusive=[("hf_repo", "url", "src"), ("files", "allow_patterns"), ("files", "ignore_patterns")],
        required_one_of=[("hf_repo", "url", "src")],
        supports_check_mode=True,
    )
    module.exit_json(**ModelDownload(module).run())


if __name__ == "__main__":
    main()
