# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""converge_inputs_digest: what a run asks of a host, so that a host whose inputs did not change can end early and
one whose inputs changed never does."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.filter import converge


@pytest.fixture
def code(tmp_path):
    """A collection's files that run."""
    (tmp_path / "roles" / "verify" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "verify" / "tasks" / "main.yml").write_text("---\n")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "galaxy.yml").write_text("version: 1.0.0\n")
    converge._code_digest.clear()
    yield tmp_path
    converge._code_digest.clear()


def host(**more):
    variables = {
        "gpufleet_services": [{"name": "chat", "model": "gemma", "port": 8080, "api_key": "k" * 32}],
        "gpufleet_models": [{"name": "gemma", "path": "/srv/gemma.gguf"}],
        "llamacpp_image_backend": "cuda",
        "ansible_host": "10.0.0.5",
        "inventory_hostname": "spark-1",
        "groups": {"all": ["spark-1"]},
        "ansible_facts": {"memtotal_mb": 128000, "gpufleet_gpu": {"vendor": "nvidia"}},
        "ansible_memtotal_mb": 128000,
        "gpufleet_gpu": {"vendor": "nvidia"},
    }
    variables.update(more)
    return variables


def digest(variables, root):
    return converge.converge_inputs_digest(variables, root=str(root))


def test_same_inputs_same_digest(code):
    assert digest(host(), code) == digest(host(), code)
    assert len(digest(host(), code)) == 64


@pytest.mark.parametrize("change", [
    {"gpufleet_services": [{"name": "chat", "model": "gemma", "port": 8081, "api_key": "k" * 32}]},
    {"gpufleet_services": [{"name": "chat", "model": "gemma", "port": 8080, "api_key": "j" * 32}]},
    {"llamacpp_image_backend": "vulkan"},
    {"ansible_host": "10.0.0.6"},
    {"verify_min_tokens_per_second": 40},
    {"gpufleet_stack_state": "absent"},
])
def test_what_the_host_is_asked_changes_the_digest(code, change):
    assert digest(host(**change), code) != digest(host(), code)


@pytest.mark.parametrize("change", [
    # Facts: gathered, cached, or returned by modules (gpu_facts) in an earlier run.
    {"ansible_facts": {"memtotal_mb": 64000, "gpufleet_gpu": {"vendor": "none"}}, "ansible_memtotal_mb": 64000,
     "gpufleet_gpu": {"vendor": "none"}},
    # How the run is driven.
    {"gpufleet_skip_unchanged": False, "gpufleet_rollout_serial": [1, "25%"], "gpufleet_serial": 2,
     "gpufleet_target": "spark", "gpufleet_unchanged_max_age": 60},
    # Ansible's own, and what roles and playbooks set while they run.
    {"groups": {"all": ["spark-1", "spark-2"]}, "playbook_dir": "/elsewhere", "ansible_play_hosts": ["spark-1"],
     "inference_stack_health": {"host": "spark-1"}, "models_files": ["/x"], "__gpufleet_engines": ["llamacpp"]},
])
def test_what_does_not_say_what_the_host_should_be_leaves_it(code, change):
    assert digest(host(**change), code) == digest(host(), code)


def test_a_change_to_the_collections_code_changes_it(code):
    before = digest(host(), code)
    (code / "roles" / "verify" / "tasks" / "main.yml").write_text("---\n- name: one more task\n")
    converge._code_digest.clear()
    assert digest(host(), code) != before


class Unresolved(dict):
    """Ansible hands a variable whose template cannot be resolved yet over as something that raises when used."""

    def __getitem__(self, name):
        if name == "llamacpp_image_commit":
            raise RuntimeError("'ansible_facts' is undefined")
        return super().__getitem__(name)


def test_an_unresolved_variable_counts_by_its_name(code):
    variables = Unresolved(host(llamacpp_image_commit="{{ x }}"))
    assert digest(variables, code) == digest(Unresolved(host(llamacpp_image_commit="{{ y }}")), code)
    assert digest(variables, code) != digest(host(), code)


def test_the_real_collection_has_a_code_digest():
    converge._code_digest.clear()
    assert len(converge.code_digest()) == 64


def test_an_edited_chat_template_file_changes_it(code, tmp_path):
    """The inventory names the file, not its content: an edit to the template must still reach the host."""
    template = tmp_path / "qa.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    services = [{"name": "chat", "model": "gemma", "port": 8080, "chat_template": str(template)}]
    before = digest(host(gpufleet_services=services), code)
    assert digest(host(gpufleet_services=services), code) == before
    template.write_text("Question: {{ messages[0]['content'] }}")
    assert digest(host(gpufleet_services=services), code) != before
