"""A host's variables, checked before any host changes: what inventory_errors refuses, naming the variable."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.inventory import (
    inference_models_errors,
    inventory_errors,
    inventory_site_roles,
    role_argument_spec,
)

MODEL = {"name": "m", "hf": {"repo": "o/r"}}
SERVICE = {"name": "chat", "model": "m", "port": 8000}


def test_a_good_host_has_no_errors():
    host = {"gpufleet_models": [MODEL, {"name": "u", "url": "https://example.com/u.gguf", "sha256": "0" * 64},
                                {"name": "p", "path": "/srv/p.gguf"}],
            "gpufleet_services": [dict(SERVICE, bind_address="0.0.0.0", context=8192, api_key="sk-0123456789abcdef")],
            "gpufleet_platform": "dgx_spark", "inference_stack_dir": "/srv/stack",
            "llamacpp_image_cuda_architectures": "121", "llamacpp_image_git_ref": "b9246",
            "verify_reports_dir": "reports", "llamacpp_image_ref": "gpufleet/llama.cpp:x", "unrelated": "x"}
    assert inventory_errors(host) == []


def test_every_problem_is_listed_not_only_the_first():
    errors = inventory_errors({"gpufleet_models": [dict(MODEL, sze_gb=1)],
                               "gpufleet_services": [dict(SERVICE, bind="0.0.0.0")],
                               "inference_stack_dir": "stack"})
    assert errors == [
        "gpufleet_models[0] (m): unknown key 'sze_gb' (did you mean 'size_gb'?)",
        "gpufleet_services[0] (chat): unknown key 'bind' (did you mean 'bind_address'?)",
        "inference_stack_dir must be an absolute path such as /opt/gpufleet/models (got 'stack')",
    ]


def test_a_path_on_the_controller_may_be_relative_but_one_on_the_host_may_not():
    assert inventory_errors({"verify_reports_dir": "reports"}) == []
    assert inventory_errors({"verify_stack_dir": "stack"}) == [
        "verify_stack_dir must be an absolute path such as /opt/gpufleet/models (got 'stack')"]


def test_an_offline_bundle_and_its_host_copy_are_absolute_paths():
    assert inventory_errors({"gpufleet_bundle": "/srv/bundle", "gpufleet_bundle_host_dir": "/var/lib/b"}) == []
    assert inventory_errors({"gpufleet_bundle": "bundle", "gpufleet_bundle_host_dir": "b"}) == [
        "gpufleet_bundle must be an absolute path such as /opt/gpufleet/models (got 'bundle')",
        "gpufleet_bundle_host_dir must be an absolute path such as /opt/gpufleet/models (got 'b')"]


def test_the_bundle_load_timeout_is_a_whole_number_of_seconds():
    assert inventory_errors({"gpufleet_bundle_image_timeout": 7200}) == []
    assert inventory_errors({"gpufleet_bundle_image_timeout": "600"}) == []
    for value in (0, -5, "1h", 1.5, True, None):
        assert inventory_errors({"gpufleet_bundle_image_timeout": value}) == [
            f"gpufleet_bundle_image_timeout must be a whole number of seconds, at least 1, such as 3600 (got {value!r})"]


def test_a_misspelt_role_variable_is_refused_with_the_variable_it_meant():
    assert inventory_errors({"llamacpp_image_cuda_arch": "121"}) == [
        "llamacpp_image_cuda_arch is not a variable of the llamacpp_image role "
        "(did you mean 'llamacpp_image_cuda_architectures'?)"]


@pytest.mark.parametrize("models, message", [
    ({"name": "m"}, "gpufleet_models must be a list of models, each a dict with name and one source (got a dict)"),
    ([{"name": "m", "hf": MODEL["hf"], "sha256": "0" * 64}], "gpufleet_models[0] (m).sha256 is for url and path sources"),
    ([{"name": "m", "url": "https://e.com/m", "path": "/m", "sha256": "0" * 64}],
     "gpufleet_models[0] (m) needs exactly one source - hf (a hub repository), url (with sha256) or path (got url, path)"),
    ([dict(MODEL, plan=[1])], "gpufleet_models[0] (m).plan must be a dict of the model's shape"),
])
def test_models_are_refused_naming_the_entry(models, message):
    assert any(message in error for error in inference_models_errors(models)), inference_models_errors(models)


@pytest.mark.parametrize("platform, services, models, roles", [
    ("dgx_spark", [SERVICE], [MODEL], ["preflight", "nvidia_driver", "docker_engine", "nvidia_container_toolkit",
                                       "llamacpp_image", "models", "inference_stack", "verify"]),
    ("strix_halo", [dict(SERVICE, engine="vllm")], [MODEL], ["preflight", "rocm", "docker_engine", "vllm_image",
                                                             "models", "inference_stack", "verify"]),
    ("cpu", [], [], ["preflight", "docker_engine", "inference_stack"]),
    (None, [], [], ["preflight", "nvidia_driver", "rocm", "docker_engine", "nvidia_container_toolkit", "inference_stack"]),
])
def test_the_roles_site_yml_runs_on_a_host(platform, services, models, roles):
    assert inventory_site_roles(platform, services, models) == roles


def test_a_role_argument_spec_keeps_types_and_choices_but_not_defaults():
    spec = role_argument_spec("llamacpp_image")
    assert spec["llamacpp_image_backend"] == {"type": "str", "choices": ["auto", "cpu", "cuda", "rocm", "vulkan"]}
    assert all("default" not in option for option in spec.values())
    assert "llamacpp_image_backend" in role_argument_spec("llamacpp_image", {"llamacpp_image_backend": "cuda"})
    with pytest.raises(AnsibleFilterError, match="'apt_sources' is not a role site.yml runs"):
        role_argument_spec("apt_sources")


class Unresolved(dict):
    """Host variables as Ansible hands them over: a template of facts not gathered yet raises when used."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, str) and "ansible_facts" in value:
            raise KeyError(f"{name}: ansible_facts is undefined")
        return value


def test_a_variable_that_cannot_be_resolved_yet_is_left_out_of_the_spec():
    variables = Unresolved({"docker_engine_repo_url": "{{ ansible_facts.x }}", "docker_engine_source": "docker"})
    spec = role_argument_spec("docker_engine", variables)
    assert "docker_engine_repo_url" not in spec and "docker_engine_source" in spec
    assert "docker_engine_log_driver" in spec
    assert inventory_errors(variables) == []


@pytest.mark.parametrize("name,value,message", [
    ("gpufleet_stack_state", "gone", "gpufleet_stack_state must be present or absent (got 'gone')"),
    ("gpufleet_rollout_max_fail_percentage", 150, "gpufleet_rollout_max_fail_percentage must be a number from 0 to 100"),
    ("gpufleet_rollout_max_unhealthy_percentage", "some", "must be a number from 0 to 100 (got 'some')"),
    ("gpufleet_rollout_serial", [1, "25", "100%"], "gpufleet_rollout_serial batch sizes are positive counts or percentages"),
    ("gpufleet_rollout_serial", 0, "(got 0)"),
    ("gpufleet_serial", [], "gpufleet_serial is an empty list"),
    ("gpufleet_skip_unchanged", "sometimes", "gpufleet_skip_unchanged must be true or false (got 'sometimes')"),
    ("gpufleet_unchanged_max_age", "1d", "gpufleet_unchanged_max_age must be a whole number of seconds, 0 or more"),
    ("gpufleet_unchanged_max_age", -5, "(got -5)"),
])
def test_rollout_variables_are_checked(name, value, message):
    errors = inventory_errors({name: value})
    assert len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize("name,value", [
    ("gpufleet_stack_state", "absent"), ("gpufleet_rollout_serial", [1, "25%", "100%"]),
    ("gpufleet_rollout_serial", 2), ("gpufleet_rollout_max_fail_percentage", "25"),
    ("gpufleet_max_fail_percentage", 0), ("gpufleet_skip_unchanged", False), ("gpufleet_skip_unchanged", "false"),
    ("gpufleet_unchanged_max_age", 0), ("gpufleet_unchanged_max_age", "3600"),
])
def test_good_rollout_variables_pass(name, value):
    assert inventory_errors({name: value}) == []


def test_the_stack_role_runs_without_services_too():
    # A stack an earlier run left is taken down when the inventory has no service left.
    assert "inference_stack" in inventory_site_roles("cpu", [], [])
    assert "verify" not in inventory_site_roles("cpu", [], [])


def test_the_benchmarks_settings_are_checked_with_the_inventory():
    assert inventory_errors({"gpufleet_bench": {"load": {"clients": 8}, "llama_bench": {"prompt": [512, 2048]}}}) == []
    assert inventory_errors({"gpufleet_bench": {"load": {"clients": 0}}}) == [
        "gpufleet_bench.load.clients must be a whole number from 1 to 256 (got 0)"]
