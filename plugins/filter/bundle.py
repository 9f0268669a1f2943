# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import posixpath

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import _split_reference
from ansible_collections.gpufleet.inference.plugins.filter.stack import uses_proxy

# The llama.cpp backend `auto` gives a platform (the role decides it from the GPUs; a bundle is built without them).
PLATFORM_BACKEND = {"cpu": "cpu", "dgx_spark": "cuda", "nvidia": "cuda", "strix_halo": "amd", "amd": "amd"}


def model_source(model):
    """What identifies a model's files, whatever mirror or path serves them: a hub repository with its revision and
    file selection, a URL's sha256, a path (and its sha256 when given)."""
    if model.get("hf") is not None:
        hf = model["hf"]
        source = {"repo": hf.get("repo"), "revision": hf.get("revision") or "main"}
        for key in ("files", "allow_patterns", "ignore_patterns"):
            if hf.get(key):
                source[key] = sorted(hf[key])
        return {"hf": source}
    if model.get("url"):
        return {"sha256": str(model.get("sha256", "")).lower()}
    return {"path": model.get("path"), "sha256": str(model.get("sha256") or "").lower() or None}


def llamacpp_image_key(hostvars):
    """The llama.cpp image a host needs, as far as the inventory says it: backend (``auto`` resolved from
    gpufleet_platform), CUDA architectures, HIP targets. None when the inventory cannot say (``auto`` without a
    platform)."""
    backend = str(hostvars.get("llamacpp_image_backend") or "auto")
    if backend == "auto":
        backend = PLATFORM_BACKEND.get(str(hostvars.get("gpufleet_platform") or ""))
        if backend is None:
            return None
        if backend == "amd":
            backend = str(hostvars.get("llamacpp_image_amd_backend") or "rocm")
    return {
        "backend": backend,
        "cuda_architectures": str(hostvars.get("llamacpp_image_cuda_architectures") or "") if backend == "cuda" else "",
        "hip_targets": str(hostvars.get("llamacpp_image_hip_targets") or "") if backend == "rocm" else "",
    }


def _describe(key):
    extra = key.get("cuda_architectures") or key.get("hip_targets")
    return key["backend"] + (" (%s)" % extra if extra else "")


def _describe_vllm(key):
    extra = ", ".join(part for part in (key.get("vllm_version"), key.get("targets")) if part)
    return "%s %s" % (key.get("source"), key.get("ref")) + (" (%s)" % extra if extra else "")


def bundle_contents(hostvars, hosts):
    """What an offline bundle must hold for ``hosts``: every model of their gpufleet_models (one per name), the
    engines their services run, one llama.cpp image per distinct (backend, CUDA architectures, HIP targets) with the
    first host that needs it (the image is built with that host's llamacpp_image settings), the hosts that run vLLM
    services (their vllm_image settings say which image each needs), and whether a reverse proxy fronts any
    service."""
    models, model_hosts, engines, images, vllm_hosts, problems = {}, {}, set(), [], [], []
    proxy = False
    for host in hosts:
        hv = hostvars[host]
        for model in hv.get("gpufleet_models") or []:
            name = model.get("name")
            if name in models and model_source(models[name]) != model_source(model):
                problems.append("gpufleet_models: model '%s' comes from %s on %s and from %s on %s; a bundle holds one "
                                "model of each name" % (name, model_source(models[name]), model_hosts[name],
                                                        model_source(model), host))
                continue
            models.setdefault(name, dict(model))
            model_hosts.setdefault(name, host)
        services = hv.get("gpufleet_services") or []
        host_engines = {service.get("engine", "llamacpp") for service in services}
        engines |= host_engines
        proxy = proxy or any(uses_proxy(service) for service in services)
        if "vllm" in host_engines:
            vllm_hosts.append(host)
        if "llamacpp" not in host_engines:
            continue
        key = llamacpp_image_key(hv)
        if key is None:
            problems.append("%s: llamacpp_image_backend is auto and gpufleet_platform is not set, so the bundle cannot "
                            "tell which llama.cpp image the host needs; set either for it" % host)
        elif key not in [image["key"] for image in images]:
            images.append({"key": key, "host": host})
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    return {
        "models": [models[name] for name in sorted(models)],
        "engines": sorted(engines),
        "llamacpp": images,
        "vllm_hosts": vllm_hosts,
        "proxy": proxy,
    }


def bundle_vllm_images(hostvars, hosts):
    """One ``{key, host}`` per distinct vLLM image that ``hosts`` need: the key is ``vllm_image_render_key``, which
    the vllm_image role's reference.yml set on each host (the source, the reference a pulled image comes from, the
    release and targets a built one is built for); the host is the first that needs it (the image is pulled or built
    with its settings)."""
    images = []
    for host in hosts:
        key = hostvars[host].get("vllm_image_render_key")
        if key is None:
            raise AnsibleFilterError("bundle_vllm_images: %s has no vllm_image_render_key (run the vllm_image role's "
                                     "reference.yml for it first)" % host)
        if key not in [image["key"] for image in images]:
            images.append({"key": dict(key), "host": host})
    return images


def bundle_image_tag(ref, image_id):
    """The tag an image is saved under, so that ``docker load`` gives it a name: the reference's own tag; for a
    reference by digest alone (``nvcr.io/nvidia/vllm@sha256:...``), ``sha256-`` and the first 12 hex digits of the
    digest (or of the image id) as tag."""
    repo, tag, digest = _split_reference(ref)
    if tag:
        return "%s:%s" % (repo, tag)
    return "%s:sha256-%s" % (repo, (digest or image_id).split(":", 1)[-1][:12])


def _file_name(ref):
    return "images/" + "".join(c if c.isalnum() or c in "-._" else "_" for c in ref) + ".tar"


def bundle_images_to_save(hostvars, llamacpp_hosts, proxy_image=None, vllm_hosts=()):
    """The images a bundle saves: each llama.cpp image built for ``llamacpp_hosts`` (with the key that picks it for a
    host), each vLLM image pulled or built for ``vllm_hosts`` (with its key, the tag it is saved under, the registry
    digest it was pulled with, its vLLM version and backend) and the reverse proxy's image when one is named; each
    with the archive it goes to."""
    images = []
    for host in llamacpp_hosts:
        ref = hostvars[host]["llamacpp_image_ref"]
        images.append({"engine": "llamacpp", "key": hostvars[host]["__gpufleet_bundle_llamacpp_key"], "ref": ref,
                       "file": _file_name(ref)})
    for host in vllm_hosts:
        hv = hostvars[host]
        ref = bundle_image_tag(hv["vllm_image_ref"], hv["__gpufleet_bundle_vllm_id"])
        images.append({"engine": "vllm", "key": hv["vllm_image_render_key"], "ref": ref, "file": _file_name(ref),
                       "source_ref": hv["vllm_image_ref"], "digest": hv["vllm_image_digest"],
                       "version": hv["vllm_image_version"], "backend": hv["vllm_image_backend"]})
    if proxy_image:
        images.append({"engine": "proxy", "ref": proxy_image, "file": _file_name(proxy_image)})
    return images


def bundle_image_ids(images, infos):
    """``images`` with the id each has on this machine (``docker_image_info``'s list); an image without one is an
    error naming it."""
    ids = {}
    for info in infos or []:
        for tag in info.get("RepoTags") or []:
            ids[tag] = info["Id"]
    missing = [image["ref"] for image in images if image["ref"] not in ids]
    if missing:
        raise AnsibleFilterError("bundle_image_ids: %s not on this machine's engine" % ", ".join(missing))
    return [dict(image, id=ids[image["ref"]]) for image in images]


def bundle_models(results):
    """The bundle's models from model_download's results (a loop over the inventory's models into
    ``models/<name>``): each model's source identity and its files, relative to the bundle, with their sha256."""
    models = []
    for result in results:
        model = result["item"]
        base = "models/" + model["name"]
        models.append({
            "name": model["name"],
            "source": model_source(model),
            "dir": base,
            "files": [{"name": item["name"], "path": base + "/" + item["name"], "size": item["size"],
                       "sha256": item["sha256"]} for item in sorted(result["files"], key=lambda item: item["name"])],
        })
    return models


def bundle_file_entries(paths, section):
    """``[{file: <section>/<name>}]`` for the files at ``paths`` (``find``'s paths), sorted by name."""
    return [{"file": section + "/" + posixpath.basename(path)} for path in sorted(paths, key=posixpath.basename)]


def bundle_compose_tools(architectures):
    """The bundle's Compose plugins, one per architecture (``tools/docker-compose-linux-<arch>``)."""
    return [{"name": "docker-compose", "architecture": arch, "file": "tools/docker-compose-linux-" + arch}
            for arch in architectures]


def bundle_installed_collections(names, listing):
    """Where each collection of ``names`` is installed and its version, from ``ansible-galaxy collection list
    --format json`` (the first path that has it, as Ansible would load it)."""
    found = []
    for name in names:
        for path, collections in listing.items():
            if name in collections:
                found.append({"name": name, "version": collections[name]["version"],
                              "path": posixpath.join(path, *name.split("."))})
                break
        else:
            raise AnsibleFilterError("bundle: collection %s is not installed on this machine" % name)
    return found


# collection_info keys of an installed collection's MANIFEST.json that galaxy.yml takes as they are.
GALAXY_KEYS = ("namespace", "name", "version", "authors", "readme", "description", "license", "license_file", "tags",
               "dependencies", "repository", "documentation", "homepage", "issues")


def bundle_galaxy_yml(collection_info):
    """A galaxy.yml for an installed collection (``collection_info`` of its MANIFEST.json), so that ansible-galaxy
    builds it again as a collection tarball: a collection installed from a Python package lacks some files its
    FILES.json lists, and a tarball of the installed tree does not install."""
    galaxy = {key: collection_info[key] for key in GALAXY_KEYS if collection_info.get(key) not in (None, "", [], {})}
    galaxy["build_ignore"] = ["MANIFEST.json", "FILES.json", "**/__pycache__"]
    return galaxy


def _model_vars(model, entry, host_dir):
    """The inventory's model as a source in the bundle on the host: the file (with its sha256) or the directory."""
    kept = {key: value for key, value in model.items() if key not in ("hf", "url", "path", "sha256")}
    files = entry["files"]
    if len(files) == 1 and "/" not in files[0]["name"]:
        kept.update(path=posixpath.join(host_dir, files[0]["path"]), sha256=files[0]["sha256"])
    else:
        kept["path"] = posixpath.join(host_dir, entry["dir"])
    return kept


def bundle_host_plan(manifest, bundle, host_dir, models, engines, hostvars):
    """How one host deploys from the bundle: the files it needs (relative to the bundle; copied to ``host_dir`` and
    checked there), the images to load (with the id each must have) and the variables that point every role at the
    bundle (models as ``path`` sources with their sha256, the llama.cpp and vLLM images as loaded images, the Compose
    plugin and the wheels from the bundle on the controller). The vLLM image is the one whose key is the host's
    ``vllm_image_render_key`` (the vllm_image role's reference.yml). AnsibleFilterError naming what the bundle lacks
    for the host."""
    problems, files, images, new_vars = [], [], [], {}
    by_name = {entry["name"]: entry for entry in manifest.get("models") or []}
    mapped = []
    for model in models or []:
        entry = by_name.get(model.get("name"))
        if entry is None:
            problems.append("gpufleet_models: model '%s' is not in the bundle (it holds: %s)"
                            % (model.get("name"), ", ".join(sorted(by_name)) or "no model"))
            continue
        if entry.get("source") != model_source(model):
            problems.append("gpufleet_models: model '%s' in the bundle comes from %s, the inventory asks for %s; build "
                            "the bundle again from this inventory" % (model["name"], entry.get("source"), model_source(model)))
            continue
        files.extend(item["path"] for item in entry["files"])
        mapped.append(_model_vars(model, entry, host_dir))
    if models:
        new_vars["gpufleet_models"] = mapped

    bundle_images = manifest.get("images") or []
    wanted = []
    if "llamacpp" in engines:
        key = llamacpp_image_key(hostvars)
        candidates = [image for image in bundle_images if image.get("engine") == "llamacpp"]
        found = [image for image in candidates if key is not None and image.get("key") == key]
        if not found and key is None and len(candidates) == 1:
            found = candidates
        if not found:
            problems.append("the bundle holds no llama.cpp image for %s (it holds: %s)%s" % (
                _describe(key) if key else "this host",
                ", ".join(_describe(image["key"]) for image in candidates) or "none",
                "" if key else "; set llamacpp_image_backend or gpufleet_platform for this host"))
        else:
            wanted.append(found[0])
            new_vars.update(llamacpp_image_source="image", llamacpp_image_prebuilt=found[0]["ref"])
    if "vllm" in engines:
        key = hostvars.get("vllm_image_render_key")
        candidates = [image for image in bundle_images if image.get("engine") == "vllm"]
        found = [image for image in candidates if image.get("key") == key]
        if not found:
            problems.append("the bundle holds no vLLM image for %s (it holds: %s); build the bundle again from this "
                            "inventory" % (_describe_vllm(key) if key else "this host",
                                           ", ".join(_describe_vllm(image["key"]) for image in candidates) or "none"))
        else:
            wanted.append(found[0])
            new_vars.update(vllm_image_prebuilt=found[0]["ref"], vllm_image_prebuilt_digest=found[0]["digest"])
    if any(uses_proxy(service) for service in hostvars.get("gpufleet_services") or []):
        proxy = [image for image in bundle_images if image.get("engine") == "proxy"]
        if proxy:
            wanted.append(proxy[0])
            new_vars["inference_stack_proxy_image"] = proxy[0]["ref"]
        else:
            problems.append("a service of this host has a reverse proxy and the bundle holds no proxy image")
    for image in wanted:
        files.append(image["file"])
        images.append({"ref": image["ref"], "id": image["id"], "file": posixpath.join(host_dir, image["file"])})

    architecture = str(hostvars.get("ansible_facts", {}).get("architecture") or hostvars.get("ansible_architecture") or "")
    for tool in manifest.get("tools") or []:
        if tool.get("name") == "docker-compose" and tool.get("architecture") == architecture:
            new_vars["docker_engine_compose_src"] = posixpath.join(bundle, tool["file"])
    if manifest.get("wheels"):
        new_vars["models_hf_client_wheels"] = posixpath.join(bundle, "wheels")
        new_vars["nvidia_driver_nvml_python_wheels"] = posixpath.join(bundle, "wheels")
    if problems:
        raise AnsibleFilterError("gpufleet_bundle %s: %s" % (bundle, "; ".join(problems)))
    return {"files": files, "images": images, "vars": new_vars}


class FilterModule:
    def filters(self):
        return {
            "bundle_contents": bundle_contents,
            "bundle_compose_tools": bundle_compose_tools,
            "bundle_file_entries": bundle_file_entries,
            "bundle_galaxy_yml": bundle_galaxy_yml,
            "bundle_host_plan": bundle_host_plan,
            "bundle_installed_collections": bundle_installed_collections,
            "bundle_image_ids": bundle_image_ids,
            "bundle_images_to_save": bundle_images_to_save,
            "bundle_image_tag": bundle_image_tag,
            "bundle_vllm_images": bundle_vllm_images,
            "bundle_models": bundle_models,
        }
