"""A service's chat template: what the inventory may say, the engine flags and mounts it becomes, and where each
service's template comes from (the warning when llama-server would fall back to ChatML)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.stack import (
    inference_chat_template_files,
    inference_chat_templates,
    inference_compose,
    inference_docker_run,
    inference_services_errors,
)
from ansible_collections.gpufleet.inference.plugins.module_utils import _chat_template

MODELS = [{"name": "gemma"}, {"name": "llama"}]
SETTINGS = {
    "project": "gpufleet",
    "images": {"llamacpp": "gpufleet/llama.cpp:cpu-0123456789ab", "vllm": "vllm/vllm-openai:v0.11.0"},
    "models": MODELS,
    "models_dir": "/opt/gpufleet/models",
    "secrets_dir": "/opt/gpufleet/stack/secrets",
    "chat_templates_dir": "/opt/gpufleet/stack/chat-templates",
}
QA = "{% for m in messages %}Question: {{ m['content'] }}\n{% endfor %}Answer:"


def service(**more):
    return dict({"name": "chat", "model": "gemma", "model_file": "gemma.gguf", "port": 8080}, **more)


def errors(**more):
    return inference_services_errors([service(**more)], MODELS)


@pytest.fixture
def template_file(tmp_path):
    path = tmp_path / "qa.jinja"
    path.write_text(QA)
    return path


def test_a_builtin_name_runs_without_jinja():
    """llama.cpp takes a built-in name only without Jinja; with Jinja it would read 'gemma' as the template."""
    doc = inference_compose([service(chat_template="gemma")], SETTINGS)
    command = doc["services"]["chat"]["command"]
    at = command.index("--chat-template")
    assert command[at - 1:at + 2] == ["--no-jinja", "--chat-template", "gemma"]
    assert "org.gpufleet.chat-template" not in doc["services"]["chat"]["labels"]


@pytest.mark.parametrize("form", ["file", "inline"])
def test_a_jinja_template_is_mounted_read_only_and_labelled_with_its_digest(form, template_file):
    value = str(template_file) if form == "file" else QA
    doc = inference_compose([service(chat_template=value)], SETTINGS)
    chat = doc["services"]["chat"]
    command = chat["command"]
    assert command[command.index("--chat-template-file") + 1] == "/run/chat-templates/chat.jinja"
    assert "--no-jinja" not in command
    assert "/opt/gpufleet/stack/chat-templates/chat.jinja:/run/chat-templates/chat.jinja:ro" in chat["volumes"]
    # A new template recreates the container: the Compose service changes with it.
    assert chat["labels"]["org.gpufleet.chat-template"] == _chat_template.digest(QA)[:16]
    assert inference_chat_template_files([service(chat_template=value)]) == [
        {"service": "chat", "name": "chat.jinja", "content": QA}]


def test_an_edited_template_file_changes_the_service(template_file):
    before = inference_compose([service(chat_template=str(template_file))], SETTINGS)["services"]["chat"]
    template_file.write_text(QA + " ")
    after = inference_compose([service(chat_template=str(template_file))], SETTINGS)["services"]["chat"]
    assert before["labels"]["org.gpufleet.chat-template"] != after["labels"]["org.gpufleet.chat-template"]


def test_vllm_gets_the_template_file():
    doc = inference_compose([service(engine="vllm", chat_template=QA, model_file=None)], SETTINGS)
    vllm = doc["services"]["chat"]
    assert vllm["command"][vllm["command"].index("--chat-template") + 1] == "/run/chat-templates/chat.jinja"
    assert "/opt/gpufleet/stack/chat-templates/chat.jinja:/run/chat-templates/chat.jinja:ro" in vllm["volumes"]


def test_stop_strings_become_reverse_prompts_with_backslashes_kept():
    """llama-server processes escapes in -r: a real newline passes, a backslash must be doubled to stay one."""
    doc = inference_compose([service(stop=["\nQuestion:", "a\\nb"])], SETTINGS)
    command = doc["services"]["chat"]["command"]
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--reverse-prompt"]
    assert pairs == ["\nQuestion:", "a\\\\nb"]


def test_docker_run_mounts_the_template_too(template_file):
    text = inference_docker_run([service(chat_template=str(template_file))], SETTINGS)
    assert "/opt/gpufleet/stack/chat-templates/chat.jinja:/run/chat-templates/chat.jinja:ro" in text


@pytest.mark.parametrize("value, message", [
    ("gemmma", "chat_template must be one of llama.cpp's built-in template names"),
    ("templates/qa.jinja", "the absolute path of a Jinja file on the controller"),
    ("/nowhere/qa.jinja", "chat_template: there is no file /nowhere/qa.jinja on the controller"),
    ("{% for m in messages %}{{ m.content }}", "chat_template is not a valid Jinja template"),
    (42, "chat_template must be one of"),
])
def test_a_bad_template_is_refused_naming_the_service(value, message):
    found = errors(chat_template=value)
    assert len(found) == 1 and found[0].startswith("gpufleet_services[0] (chat).chat_template")
    assert message in found[0]


def test_a_file_that_is_no_jinja_template_is_refused(tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% if %}")
    assert f"chat_template ({bad}) is not a valid Jinja template" in errors(chat_template=str(bad))[0]


def test_vllm_takes_no_builtin_name_and_no_stop():
    found = inference_services_errors([service(engine="vllm", chat_template="gemma", stop=["x"], model_file=None)],
                                      MODELS)
    assert any("'gemma' is a llama.cpp built-in name; vLLM takes a Jinja template" in e for e in found)
    assert any(".stop is a llama.cpp setting" in e for e in found)


@pytest.mark.parametrize("stop", ["\nQuestion:", [], [""], ["x"] * 17, [1]])
def test_stop_must_be_a_short_list_of_strings(stop):
    assert "stop must be a list of 1 to 16 non-empty strings" in errors(stop=stop)[0]


def test_services_with_lanes_take_the_template_per_lane():
    lanes = service(lanes=[{"name": "a", "model": "gemma"}], chat_template="gemma")
    del lanes["model"]
    found = inference_services_errors([lanes], MODELS)
    assert any("chat_template is a setting of a service with one model" in e for e in found)


def test_a_missing_file_at_deploy_time_names_the_service():
    with pytest.raises(AnsibleFilterError, match=r"\(chat\)\.chat_template: there is no file /gone\.jinja"):
        inference_chat_template_files([service(chat_template="/gone.jinja")])


GGUF_WITH = {"architecture": "llama", "name": "Llama 3.2 1B Instruct", "chat_template": "{{ bos_token }}..."}
GGUF_WITHOUT = {"architecture": "gemma3", "name": "Gemma 3 270m", "chat_template": None}


def test_where_each_template_comes_from():
    services = [service(), service(name="base", model="gemma"), service(name="named", chat_template="gemma"),
                service(name="big", model="llama"), service(name="v", engine="vllm")]
    files = {"chat": "/m/llama.gguf", "base": "/m/gemma.gguf", "named": "/m/gemma.gguf", "big": "/m/other.gguf"}
    result = inference_chat_templates(services, {"/m/llama.gguf": GGUF_WITH, "/m/gemma.gguf": GGUF_WITHOUT}, files)
    by = result["services"]
    assert by["chat"] == {"source": "gguf", "name": "Llama 3.2 1B Instruct", "file": "/m/llama.gguf"}
    assert by["base"]["source"] == "chatml-fallback"
    assert by["named"] == {"source": "service", "name": "built-in gemma", "file": "/m/gemma.gguf"}
    assert by["big"]["source"] == "unknown"  # its file was not read
    assert "v" not in by  # vLLM reads its template from the model's tokenizer files
    assert result["unset_by_file"] == {"/m/llama.gguf": ["chat"], "/m/gemma.gguf": ["base"], "/m/other.gguf": ["big"]}
    [warning] = result["warnings"]
    assert warning.startswith("gpufleet_services (base): gemma.gguf carries no chat template")
    assert "falls back to ChatML" in warning and "such as gemma" in warning
