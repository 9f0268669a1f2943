# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import base64
import ipaddress
import json
import posixpath
import re

from ansible_collections.gpufleet.inference.plugins.filter.stack import inference_tensor_parallel_errors

GB = 1000 ** 3
GIB = 1024 ** 3
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
# /proc/net/tcp{,6}: "sl local_address rem_address st ...", addresses as hex, state 0A is LISTEN.
LISTEN_RE = re.compile(
    r"^\s*\d+: ([0-9A-F]{8}|[0-9A-F]{32}):([0-9A-F]{4}) [0-9A-F]+:[0-9A-F]{4} 0A ", re.MULTILINE)
# ss -Htlnp names the processes as users:(("name",pid=N,fd=M),...).
SS_USER_RE = re.compile(r'\("([^"]+)",pid=(\d+)')
WILDCARDS = ("0.0.0.0", "::", "")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first(pattern, text, flags=0):
    match = re.search(pattern, text or "", flags)
    return match.group(1) if match else None


# Platform


def _dgx_version(release):
    return (_first(r'^DGX_OTA_VERSION="?([^"\n]+)', release, re.MULTILINE)
            or _first(r'^DGX_SWBUILD_VERSION="?([^"\n]+)', release, re.MULTILINE) or "unknown")


def preflight_platform_check(facts, supported, dgx_release=None):
    """The host (ansible_facts; dgx_release: the text of /etc/dgx-release, None without one) against
    preflight_supported_platforms."""
    dist = str(facts.get("distribution"))
    ver = str(facts.get("distribution_version"))
    major = str(facts.get("distribution_major_version"))
    arch = ARCH_ALIASES.get(facts.get("architecture"), facts.get("architecture"))
    dgx = dgx_release is not None
    dgx_version = _dgx_version(dgx_release) if dgx else None
    name = f"DGX OS {dgx_version} ({dist} {ver}, {arch})" if dgx else f"{dist} {ver} ({arch})"
    ok, allowed = False, []
    for platform in supported or []:
        versions = [str(v) for v in platform.get("versions") or []]
        archs = [ARCH_ALIASES.get(a, a) for a in platform.get("architectures") or []]
        allowed.append(f"{platform.get('distribution')} {'/'.join(versions) or 'any version'} on "
                       f"{'/'.join(str(a) for a in archs) or 'any architecture'}")
        if platform.get("distribution") == "DGX OS":
            os_ok = dgx and (not versions or dgx_version in versions or dgx_version.split(".")[0] in versions)
        else:
            os_ok = platform.get("distribution") == dist and (not versions or ver in versions or major in versions)
        ok = ok or (os_ok and (not archs or arch in archs))
    report = {"name": name, "distribution": dist, "version": ver, "architecture": arch,
              "dgx_os_version": dgx_version, "supported": ok}
    problems = [] if ok else [
        f"platform: {name} is not supported here: preflight_supported_platforms allows {'; '.join(allowed) or 'nothing'}"]
    return {"report": report, "problems": problems}


# GPU


def preflight_gpu_check(gpu, require, services=None):
    """gpu_facts' gpufleet_gpu against preflight_require_gpu (none, nvidia, amd, any) and the services'
    tensor_parallel_size. A GPU on the PCI bus whose driver is not loaded yet (unusable_devices) counts."""
    gpu = gpu or {}
    vendor = gpu.get("vendor") or "none"
    reason = gpu.get("reason") or ""
    devices = gpu.get("devices") or []
    count = gpu.get("count", 0)
    listed = devices + (gpu.get("unusable_devices") or [])
    present = [v for v in ("nvidia", "amd") if vendor == v or any(d.get("vendor") == v for d in listed)]
    ok = require == "none" or (require == "any" and bool(present)) or require in present
    found = f"{vendor} ({count} device(s))" if vendor != "none" else f"none: {reason or 'gpu_facts gave no reason'}"
    problems = [] if ok else [
        f"GPU: preflight_require_gpu is {require} but gpu_facts (fact gpufleet_gpu) found "
        f"{found + '; a GPU of another vendor' if present else found}"]
    # A vLLM service split over more GPUs than the host has cannot start.
    if vendor != "none":
        problems += ["GPU: " + e for e in inference_tensor_parallel_errors(services, count)]
    report = {"required": require, "vendor": vendor, "present": present, "driver_loaded": vendor != "none",
              "count": count, "names": [d.get("name", "") for d in devices], "reason": reason,
              "unified_memory": gpu.get("unified_memory", False),
              "memory_budget_bytes": gpu.get("memory_budget_bytes"),
              "amd_apu": any(d.get("apu") for d in devices)}
    return {"report": report, "problems": problems}


# Disk


def preflight_dir_chain(path):
    """A directory and its parents, nearest first, / last: where to look for the nearest one that exists."""
    parts = re.sub("/+$", "", path).split("/")
    return ["/".join(parts[:n]) or "/" for n in range(len(parts), 0, -1)]


def _present(records):
    """Model name -> (number of files, their bytes) from the verification records read on the host: slurp
    results, each with item (the record's path) and content (base64)."""
    present = {}
    for result in records or []:
        if "content" not in result:
            continue
        record = json.loads(base64.b64decode(result["content"]))
        files = list((record.get("files") or {}).values()) if isinstance(record, dict) else []
        name = posixpath.basename(posixpath.dirname(result["item"]))
        present[name] = (len(files), sum(f.get("size", 0) if isinstance(f, dict) else 0 for f in files))
    return present


def preflight_disk_check(models, models_dir, checked_path=None, df_output="", records=None, margin_gb=10):
    """The models' size_gb hints against the free space of the filesystem of models_dir.

    checked_path is the nearest directory of models_dir that exists, df_output what ``df -P -B1 <checked_path>``
    printed, records the slurp results of the verification records of the inventory's models."""
    problems = [] if str(models_dir).startswith("/") else [
        f"disk: gpufleet_models_dir must be an absolute path (got {models_dir})"]
    if not models or problems:
        return {"report": {}, "problems": problems}
    present_files = _present(records)
    needed_total, report_models, unknown, waiting = 0, [], [], []
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        name = model.get("name", f"#{index}")
        count, present_bytes = present_files.get(name, (0, 0))
        present = count > 0
        size = model.get("size_gb")
        if size is not None and (not _number(size) or size < 0):
            problems.append(f"gpufleet_models[{index}] ({name}).size_gb must be a number of GB, 0 or more (got {size})")
            size = None
        size_bytes = int(size * GB) if size is not None else None
        needed = 0 if present else (size_bytes or 0)
        needed_total += needed
        if not present and size is None:
            unknown.append(name)
        if needed > 0:
            waiting.append(f"{name} {needed / GB:.1f} GB")
        report_models.append({"name": name, "size_bytes": size_bytes, "present": present,
                              "present_bytes": present_bytes, "needed_bytes": needed})
    lines = (df_output or "").splitlines()
    fields = lines[-1].split() if lines else []
    free = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else 0
    mount_point = fields[5] if len(fields) > 5 else None
    margin = int(float(margin_gb) * GB)
    if needed_total > 0 and needed_total + margin > free:
        problems.append(
            f"disk: gpufleet_models still to download need {needed_total / GB:.1f} GB ({', '.join(waiting)}, from their "
            f"size_gb) plus preflight_disk_margin_gb {margin_gb} GB, but the filesystem of gpufleet_models_dir "
            f"({models_dir}, mounted on {mount_point or '?'}) has only {free / GB:.1f} GB free")
    report = {"models_dir": models_dir, "checked_path": checked_path, "mount_point": mount_point,
              "free_bytes": free, "needed_bytes": needed_total, "margin_bytes": margin, "models": report_models,
              "unknown_size": unknown}
    return {"report": report, "problems": problems}


# Ports


def _address(hex_address):
    """An address of /proc/net/tcp{,6} as text: 32-bit words in host (little-endian) byte order; IPv4-mapped
    IPv6 addresses as IPv4."""
    raw = b"".join(bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def _normal(address):
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def preflight_listeners(texts):
    """The listening TCP sockets, [{address, port}], from the texts of /proc/net/tcp and /proc/net/tcp6."""
    return [{"address": _address(a), "port": int(p, 16)} for text in texts or [] for a, p in LISTEN_RE.findall(text)]


def preflight_port_services(services):
    """The services' ports to check: [{index, name, port, bind}]. Entries without a valid port are left to the
    inventory check (inference_stack's validation)."""
    ports = []
    for index, service in enumerate(services or []):
        if isinstance(service, dict) and _number(service.get("port")):
            ports.append({"index": index, "name": service.get("name", f"#{index}"), "port": int(service["port"]),
                          "bind": str(service.get("bind_address") or "127.0.0.1").strip("[]")})
    return ports


def preflight_ports_taken(ports, listeners):
    """The services whose port something listens on: [{index, listeners: ["addr:port", ...]}]. Taken means a
    socket on the port on the service's bind address or on a wildcard address (0.0.0.0, ::), or on any address
    when the service binds a wildcard."""
    taken = []
    for port in ports:
        bind = _normal(port["bind"])
        hits = []
        for listener in listeners:
            address = listener["address"]
            if listener["port"] == port["port"] and (bind in WILDCARDS or address in WILDCARDS or address == bind):
                hit = f"[{address}]:{listener['port']}" if ":" in address else f"{address}:{listener['port']}"
                if hit not in hits:
                    hits.append(hit)
        if hits:
            taken.append({"index": port["index"], "listeners": hits})
    return taken


def preflight_ports_check(ports, taken, own_ports_output="", ss_output="", project="gpufleet"):
    """Free, held by our own Compose project (own_ports_output: ``docker ps --format {{.Ports}}`` of its
    containers) or in use by another process (named from ss_output, ``ss -Htlnp``)."""
    own = {int(p) for p in re.findall(r":(\d+)->", own_ports_output or "")}
    report, problems = [], []
    for port in ports:
        holders = next((t["listeners"] for t in taken if t["index"] == port["index"]), [])
        if not holders:
            state = "free"
        elif port["port"] in own:
            state = project
        else:
            state = "in use"
            procs = []
            for line in (ss_output or "").splitlines():
                fields = line.split()
                if len(fields) > 3 and fields[3].endswith(f":{port['port']}"):
                    for user in SS_USER_RE.findall(line):
                        proc = f"{user[0]} (pid {user[1]})"
                        if proc not in procs:
                            procs.append(proc)
            problems.append(
                f"port: gpufleet_services[{port['index']}] ({port['name']}).port {port['port']} on {port['bind']} is in "
                f"use by {', '.join(procs) or 'another process'} (listening on {', '.join(holders)}), not by a "
                f"container of Compose project {project}: stop it or choose another port")
        report.append({"service": port["name"], "port": port["port"], "bind_address": port["bind"], "state": state,
                       "listeners": holders})
    return {"report": report, "problems": problems}


# Kernel command line


def preflight_kernel_check(cmdline, min_gpu_memory_gb=0, wanted=True, why=""):
    """/proc/cmdline of an AMD APU: amdgpu.gttsize is refused (deprecated, conflicts with ttm.pages_limit),
    ttm.pages_limit (4 KiB pages) below min_gpu_memory_gb (GiB) too. why says why the check ran."""
    gtt = _first(r"(?:^|\s)amdgpu\.gttsize=(\S*)", cmdline)
    pages = _first(r"(?:^|\s)ttm\.pages_limit=(\d+)", cmdline)
    min_bytes = int(float(min_gpu_memory_gb) * GIB)
    problems = []
    if gtt is not None:
        problems.append(
            f"kernel: /proc/cmdline has amdgpu.gttsize={gtt}, which is deprecated and conflicts with ttm.pages_limit: "
            f"remove it and size the GPU memory with ttm.pages_limit only (checked because {why})")
    if pages is not None and min_bytes > 0 and int(pages) * 4096 < min_bytes:
        problems.append(
            f"kernel: /proc/cmdline has ttm.pages_limit={pages} ({int(pages) * 4096 / GIB:.1f} GiB), less than "
            f"preflight_min_gpu_memory_gb {min_gpu_memory_gb}: set ttm.pages_limit={min_bytes // 4096} or more "
            f"(checked because {why})")
    report = {"checked": bool(wanted), "amdgpu_gttsize": gtt, "ttm_pages_limit": int(pages) if pages else None}
    return {"report": report, "problems": problems if wanted else []}


class FilterModule:
    def filters(self):
        return {
            "preflight_platform_check": preflight_platform_check,
            "preflight_gpu_check": preflight_gpu_check,
            "preflight_dir_chain": preflight_dir_chain,
            "preflight_disk_check": preflight_disk_check,
            "preflight_listeners": preflight_listeners,
            "preflight_port_services": preflight_port_services,
            "preflight_ports_taken": preflight_ports_taken,
            "preflight_ports_check": preflight_ports_check,
            "preflight_kernel_check": preflight_kernel_check,
        }
