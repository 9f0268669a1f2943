"""Each service answers through the chat template it was given: the base model's GGUF carries none, so without one
llama-server would fall back to ChatML and the answer would run on with ChatML's markers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from test_default import SERVICES, STACK, curl, key

TEMPLATE = Path(__file__).resolve().parents[3] / "inventory" / "chat-templates" / "question-answer.jinja"


def ask(host, service, question, **more):
    port, served = SERVICES[service]
    status, body = curl(host, "/v1/chat/completions", port, key(host, service),
                        dict({"model": served, "max_tokens": 40, "temperature": 0,
                              "messages": [{"role": "user", "content": question}]}, **more))
    assert status == 200, body
    return json.loads(body)["choices"][0]


def props(host, service):
    status, body = curl(host, "/props", SERVICES[service][0], key(host, service))
    assert status == 200, body
    return json.loads(body)


def test_a_plain_question_gets_an_answer(host):
    """The Question/Answer template and its stop string: an answer, not a question back, and no markers."""
    choice = ask(host, "chat", "What is the capital of France?")
    answer = choice["message"]["content"]
    assert "Paris" in answer
    assert "<|im_start|>" not in answer and "<|im_end|>" not in answer
    # The model would ask the next question itself: the stop string ends the answer there.
    assert "Question:" not in answer and choice["finish_reason"] == "stop"


def test_the_server_runs_the_template_file_the_inventory_names(host):
    given = TEMPLATE.read_text(encoding="utf-8")
    f = host.file(f"{STACK}/chat-templates/chat.jinja")
    assert f.content_string == given and f.mode == 0o644
    # llama-server keeps the template without its last newline.
    assert props(host, "chat")["chat_template"] == given.rstrip("\n")
    mounts = json.loads(host.check_output("docker inspect gpufleet-chat-1"))[0]["Mounts"]
    [mount] = [m for m in mounts if m["Destination"] == "/run/chat-templates/chat.jinja"]
    assert mount["RW"] is False


def test_a_builtin_template_by_name(host):
    """chat-long names llama.cpp's built-in gemma template: the server applies it (without Jinja) instead of ChatML."""
    assert props(host, "chat-long")["chat_template"] == "gemma"
    answer = ask(host, "chat-long", "Hi")["message"]["content"]
    assert "<|im_start|>" not in answer and "<|im_end|>" not in answer


def test_the_served_files_were_read_with_gguf(host):
    """What inference_stack read from the GGUF files (its cache on the host): the file has no template."""
    cache = json.loads(host.file("/var/lib/gpufleet/gguf-metadata.json").content_string)
    [metadata] = [entry["metadata"] for path, entry in cache["files"].items()
                  if path.startswith("/opt/gpufleet/models/gemma-3-270m-hub/")]
    assert metadata["architecture"] == "gemma3" and metadata["file_type"] == "Q4_K_M"
    assert metadata["chat_template"] is None


def test_the_report_says_where_each_template_comes_from():
    report = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
                         / "gpufleet-inference_stack.json").read_text())
    by_name = {service["name"]: service["chat_template"] for service in report["services"]}
    assert by_name["chat"]["source"] == "service" and by_name["chat"]["name"] == "question-answer.jinja"
    assert by_name["chat-long"] == {"source": "service", "name": "built-in gemma",
                                    "file": "/opt/gpufleet/models/gemma-3-270m-url/gemma-3-270m-q4_k_m.gguf"}
