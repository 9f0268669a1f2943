# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a bundle holds for an inventory, and how one host deploys from it: every source pointed at the bundle, or an
error naming what the bundle lacks."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.bundle import (
    bundle_contents,
    bundle_galaxy_yml,
    bundle_host_plan,
    bundle_image_ids,
    bundle_image_tag,
    bundle_images_to_save,
    bundle_installed_collections,
    bundle_models,
    bundle_vllm_images,
)

GEMMA = {"name": "gemma", "hf": {"repo": "org/gemma-GGUF", "files": ["gemma-q4.gguf"]}}
QWEN = {"name": "qwen", "url": "https://models.example/qwen.gguf", "sha256": "AB" * 32}
CHAT = {"name": "chat", "model": "gemma", "port": 8080}
KEY_CPU = {"backend": "cpu", "cuda_architectures": "", "hip_targets": ""}
KEY_SPARK = {"backend": "cuda", "cuda_architectures": "121", "hip_targets": ""}
# vllm_image_render_key as the vllm_image role's reference.yml gives it.
VLLM_NGC = {"source": "ngc", "ref": "nvcr.io/nvidia/vllm:26.10-py3", "vllm_version": "", "targets": ""}
VLLM_CPU = {"source": "cpu", "ref": "gpufleet/vllm:cpu-render", "vllm_version": "0.32.0", "targets": ""}
NGC_DIGEST = "sha256:" + "d" * 64

MANIFEST = {
    "format": 1,
    "images": [
        {"engine": "llamacpp", "key": KEY_CPU, "ref": "gpufleet/llama.cpp:cpu-aaa", "id": "sha256:a",
         "file": "images/cpu.tar"},
        {"engine": "llamacpp", "key": KEY_SPARK, "ref": "gpufleet/llama.cpp:cuda-bbb", "id": "sha256:b",
         "file": "images/cuda.tar"},
        {"engine": "proxy", "ref": "nginx:1.28-alpine", "id": "sha256:c", "file": "images/nginx.tar"},
        {"engine": "vllm", "key": VLLM_NGC, "ref": "nvcr.io/nvidia/vllm:26.10-py3", "id": "sha256:e",
         "file": "images/ngc.tar", "digest": NGC_DIGEST, "version": "0.31.0", "backend": "cuda"},
    ],
    "models": bundle_models([
        {"item": GEMMA, "files": [{"name": "gemma-q4.gguf", "size": 9, "sha256": "11" * 32}]},
        {"item": {"name": "tree", "path": "/srv/tree"},
         "files": [{"name": "config.json", "size": 2, "sha256": "22" * 32},
                   {"name": "sub/weights.bin", "size": 3, "sha256": "33" * 32}]},
    ]),
    "tools": [{"name": "docker-compose", "architecture": "x86_64", "file": "tools/docker-compose-linux-x86_64"}],
    "wheels": [{"file": "wheels/hub.whl"}],
    "files": [],
}


def plan(models=(GEMMA,), engines=("llamacpp",), **hostvars):
    hostvars.setdefault("gpufleet_platform", "cpu")
    hostvars.setdefault("ansible_facts", {"architecture": "x86_64"})
    return bundle_host_plan(MANIFEST, "/srv/bundle", "/var/lib/gpufleet/bundle", list(models), list(engines), hostvars)


def test_a_cpu_host_gets_its_model_image_compose_and_wheels_from_the_bundle():
    result = plan()
    assert result["files"] == ["models/gemma/gemma-q4.gguf", "images/cpu.tar"]
    assert result["images"] == [{"ref": "gpufleet/llama.cpp:cpu-aaa", "id": "sha256:a",
                                 "file": "/var/lib/gpufleet/bundle/images/cpu.tar"}]
    assert result["vars"] == {
        "gpufleet_models": [{"name": "gemma", "path": "/var/lib/gpufleet/bundle/models/gemma/gemma-q4.gguf",
                             "sha256": "11" * 32}],
        "llamacpp_image_source": "image",
        "llamacpp_image_prebuilt": "gpufleet/llama.cpp:cpu-aaa",
        "docker_engine_compose_src": "/srv/bundle/tools/docker-compose-linux-x86_64",
        "models_hf_client_wheels": "/srv/bundle/wheels",
        "nvidia_driver_nvml_python_wheels": "/srv/bundle/wheels",
    }


def test_a_spark_host_gets_the_image_for_its_architecture():
    result = plan(gpufleet_platform="dgx_spark", llamacpp_image_cuda_architectures=121)
    assert result["vars"]["llamacpp_image_prebuilt"] == "gpufleet/llama.cpp:cuda-bbb"


def test_a_model_of_several_files_is_its_directory_and_keeps_the_inventory_keys():
    model = {"name": "tree", "path": "/srv/tree", "min_free_gb": 1}
    result = plan(models=[model])
    assert result["vars"]["gpufleet_models"] == [{"name": "tree", "path": "/var/lib/gpufleet/bundle/models/tree",
                                                  "min_free_gb": 1}]
    assert result["files"][:2] == ["models/tree/config.json", "models/tree/sub/weights.bin"]


def test_a_service_behind_a_tls_front_loads_the_proxy_image():
    result = plan(gpufleet_services=[dict(CHAT, tls={"self_signed": True})])
    assert result["vars"]["inference_stack_proxy_image"] == "nginx:1.28-alpine"
    assert "images/nginx.tar" in result["files"]


@pytest.mark.parametrize("kwargs, message", [
    ({"models": [QWEN]}, "gpufleet_models: model 'qwen' is not in the bundle (it holds: gemma, tree)"),
    ({"models": [{"name": "gemma", "hf": {"repo": "org/gemma-GGUF", "revision": "v2", "files": ["gemma-q4.gguf"]}}]},
     "gpufleet_models: model 'gemma' in the bundle comes from {'hf': {'repo': 'org/gemma-GGUF', 'revision': 'main',"),
    ({"gpufleet_platform": "strix_halo"}, "the bundle holds no llama.cpp image for rocm (it holds: cpu, cuda (121))"),
    ({"gpufleet_platform": "dgx_spark", "llamacpp_image_cuda_architectures": "90"},
     "no llama.cpp image for cuda (90)"),
    ({"engines": ["llamacpp", "vllm"], "vllm_image_render_key": VLLM_CPU},
     "the bundle holds no vLLM image for cpu gpufleet/vllm:cpu-render (0.32.0) (it holds: ngc "
     "nvcr.io/nvidia/vllm:26.10-py3); build the bundle again from this inventory"),
    ({"engines": ["vllm"], "vllm_image_render_key": dict(VLLM_NGC, ref="nvcr.io/nvidia/vllm:26.11-py3")},
     "no vLLM image for ngc nvcr.io/nvidia/vllm:26.11-py3"),
])
def test_what_the_bundle_lacks_for_a_host_is_named(kwargs, message):
    with pytest.raises(AnsibleFilterError) as exc:
        plan(**kwargs)
    assert str(exc.value).startswith("gpufleet_bundle /srv/bundle: ")
    assert message in str(exc.value)


def test_a_vllm_host_gets_the_image_its_settings_name_with_the_registry_digest_it_was_pulled_with():
    result = plan(models=[], engines=["vllm"], gpufleet_platform="dgx_spark", vllm_image_render_key=dict(VLLM_NGC))
    assert result["images"] == [{"ref": "nvcr.io/nvidia/vllm:26.10-py3", "id": "sha256:e",
                                 "file": "/var/lib/gpufleet/bundle/images/ngc.tar"}]
    assert result["files"] == ["images/ngc.tar"]
    assert result["vars"]["vllm_image_prebuilt"] == "nvcr.io/nvidia/vllm:26.10-py3"
    assert result["vars"]["vllm_image_prebuilt_digest"] == NGC_DIGEST
    assert "llamacpp_image_prebuilt" not in result["vars"]


def test_a_host_without_platform_takes_the_only_llamacpp_image():
    manifest = dict(MANIFEST, images=MANIFEST["images"][:1])
    result = bundle_host_plan(manifest, "/b", "/h", [], ["llamacpp"], {"llamacpp_image_backend": "auto"})
    assert result["vars"]["llamacpp_image_prebuilt"] == "gpufleet/llama.cpp:cpu-aaa"
    assert "gpufleet_models" not in result["vars"]


HOSTVARS = {
    "spark-1": {"gpufleet_platform": "dgx_spark", "llamacpp_image_cuda_architectures": "121",
                "gpufleet_models": [GEMMA], "gpufleet_services": [CHAT]},
    "spark-2": {"gpufleet_platform": "dgx_spark", "llamacpp_image_cuda_architectures": "121",
                "gpufleet_models": [GEMMA, QWEN], "gpufleet_services": [CHAT]},
    "cpu-1": {"gpufleet_platform": "cpu", "gpufleet_models": [QWEN],
              "gpufleet_services": [{"name": "big", "engine": "vllm", "model": "qwen", "bind_address": "0.0.0.0"}]},
    "cpu-2": {"llamacpp_image_backend": "cpu", "gpufleet_models": [GEMMA], "gpufleet_services": [CHAT]},
}


def test_the_bundle_holds_each_model_once_and_one_image_per_backend_and_architecture():
    contents = bundle_contents(HOSTVARS, ["spark-1", "spark-2", "cpu-1", "cpu-2"])
    assert [model["name"] for model in contents["models"]] == ["gemma", "qwen"]
    assert contents["engines"] == ["llamacpp", "vllm"]
    assert contents["llamacpp"] == [{"key": KEY_SPARK, "host": "spark-1"}, {"key": KEY_CPU, "host": "cpu-2"}]
    assert contents["vllm_hosts"] == ["cpu-1"]
    assert contents["proxy"] is True


def test_one_vllm_image_per_key_pulled_or_built_with_the_first_host_that_needs_it():
    hostvars = {"a": {"vllm_image_render_key": VLLM_NGC}, "b": {"vllm_image_render_key": VLLM_CPU},
                "c": {"vllm_image_render_key": dict(VLLM_NGC)}, "d": {"vllm_image_render_key": dict(VLLM_CPU, vllm_version="0.33.0")}}
    assert bundle_vllm_images(hostvars, ["a", "b", "c", "d"]) == [
        {"key": VLLM_NGC, "host": "a"}, {"key": VLLM_CPU, "host": "b"},
        {"key": dict(VLLM_CPU, vllm_version="0.33.0"), "host": "d"}]
    with pytest.raises(AnsibleFilterError, match="e has no vllm_image_render_key"):
        bundle_vllm_images({"e": {}}, ["e"])


@pytest.mark.parametrize("ref, tag", [
    ("nvcr.io/nvidia/vllm:26.10-py3@" + NGC_DIGEST, "nvcr.io/nvidia/vllm:26.10-py3"),
    ("nvcr.io/nvidia/vllm@" + NGC_DIGEST, "nvcr.io/nvidia/vllm:sha256-dddddddddddd"),
    ("localhost:5000/vllm@" + NGC_DIGEST, "localhost:5000/vllm:sha256-dddddddddddd"),
    ("gpufleet/vllm:cpu-0123456789ab", "gpufleet/vllm:cpu-0123456789ab"),
])
def test_an_image_named_by_digest_is_saved_under_a_tag(ref, tag):
    assert bundle_image_tag(ref, "sha256:" + "f" * 64) == tag


def test_one_name_two_models_and_an_unknown_backend_are_refused():
    hostvars = dict(HOSTVARS, other={"gpufleet_models": [dict(GEMMA, hf={"repo": "org/other"})],
                                     "gpufleet_services": [CHAT]})
    with pytest.raises(AnsibleFilterError) as exc:
        bundle_contents(hostvars, ["spark-1", "other"])
    assert "model 'gemma' comes from {'hf': {'repo': 'org/gemma-GGUF'" in str(exc.value)
    assert "on spark-1 and from {'hf': {'repo': 'org/other', 'revision': 'main'}} on other" in str(exc.value)
    assert ("other: llamacpp_image_backend is auto and gpufleet_platform is not set, so the bundle cannot tell which "
            "llama.cpp image the host needs") in str(exc.value)


def test_the_images_to_save_carry_their_key_archive_and_id():
    hostvars = {"spark-1": {"llamacpp_image_ref": "gpufleet/llama.cpp:cuda-bbb", "__gpufleet_bundle_llamacpp_key": KEY_SPARK}}
    images = bundle_images_to_save(hostvars, ["spark-1"], "nginx:1.28-alpine")
    assert [image["file"] for image in images] == ["images/gpufleet_llama.cpp_cuda-bbb.tar", "images/nginx_1.28-alpine.tar"]
    infos = [{"RepoTags": ["gpufleet/llama.cpp:cuda-bbb"], "Id": "sha256:b"}, {"RepoTags": ["nginx:1.28-alpine"], "Id": "sha256:c"}]
    assert [image["id"] for image in bundle_image_ids(images, infos)] == ["sha256:b", "sha256:c"]
    with pytest.raises(AnsibleFilterError, match="nginx:1.28-alpine not on this machine's engine"):
        bundle_image_ids(images, infos[:1])


def test_a_vllm_image_to_save_keeps_the_digest_it_was_pulled_with():
    hostvars = {"spark-1": {"vllm_image_ref": "nvcr.io/nvidia/vllm@" + NGC_DIGEST, "vllm_image_digest": NGC_DIGEST,
                            "vllm_image_version": "0.31.0", "vllm_image_backend": "cuda",
                            "vllm_image_render_key": VLLM_NGC, "__gpufleet_bundle_vllm_id": "sha256:" + "e" * 64}}
    (image,) = bundle_images_to_save(hostvars, [], None, ["spark-1"])
    assert image == {"engine": "vllm", "key": VLLM_NGC, "ref": "nvcr.io/nvidia/vllm:sha256-dddddddddddd",
                     "file": "images/nvcr.io_nvidia_vllm_sha256-dddddddddddd.tar",
                     "source_ref": "nvcr.io/nvidia/vllm@" + NGC_DIGEST, "digest": NGC_DIGEST, "version": "0.31.0",
                     "backend": "cuda"}


def test_installed_collections_come_from_the_first_path_that_has_them():
    listing = {"/a": {"community.general": {"version": "9.0.0"}}, "/b": {"community.docker": {"version": "4.8.5"}},
               "/c": {"community.docker": {"version": "3.0.0"}}}
    assert bundle_installed_collections(["community.docker"], listing) == [
        {"name": "community.docker", "version": "4.8.5", "path": "/b/community/docker"}]
    with pytest.raises(AnsibleFilterError, match="collection ansible.posix is not installed"):
        bundle_installed_collections(["ansible.posix"], listing)


def test_an_installed_collection_gets_a_galaxy_yml_that_builds_it_again():
    info = {"namespace": "community", "name": "docker", "version": "4.8.5", "authors": ["A"], "readme": "README.md",
            "license": [], "license_file": "COPYING", "dependencies": {"community.library_inventory_filtering_v1": ">=1.0.0"},
            "tags": ["docker"], "description": "Docker", "repository": None}
    galaxy = bundle_galaxy_yml(info)
    assert galaxy == {"namespace": "community", "name": "docker", "version": "4.8.5", "authors": ["A"],
                      "readme": "README.md", "description": "Docker", "license_file": "COPYING", "tags": ["docker"],
                      "dependencies": {"community.library_inventory_filtering_v1": ">=1.0.0"},
                      "build_ignore": ["MANIFEST.json", "FILES.json", "**/__pycache__"]}
