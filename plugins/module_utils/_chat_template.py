# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which chat template a service answers with: the service's own, or the one its GGUF file carries.

A chat request is turned into the model's prompt by a chat template. A GGUF file usually carries the template its
model was trained with (``tokenizer.chat_template``); llama-server uses it, and falls back to ChatML when the file
has none. ChatML is wrong for most models: Gemma, for one, then answers with the ``<|im_start|>`` markers in its
text. A service's ``chat_template`` names the template instead, in one of three forms:

- one of llama.cpp's built-in names (``gemma``, ``llama3``, ``chatml`` ...): llama-server applies it without Jinja
  (``--no-jinja --chat-template NAME``), as llama.cpp only accepts these names in that mode;
- the absolute path of a Jinja file on the controller: the role copies it into the stack and the engine reads it
  (llama.cpp's ``--chat-template-file``, vLLM's ``--chat-template``);
- the Jinja template itself (any text with ``{%`` or ``{{``), written to a file the same way.

``stop`` (llama.cpp) gives strings that end an answer when a request names none: a base model, which was never
taught to end its turn, needs them (the demo's Question/Answer template stops at the next question).
"""

from __future__ import annotations

import hashlib
import os

# llama.cpp's built-in chat templates (LLM_CHAT_TEMPLATES in src/llama-chat.cpp, llama.cpp 0.3.36 / b8xxx).
# A name added by a newer llama.cpp is refused here until this list has it: the server would otherwise take the
# name for a Jinja template and answer with the name's text.
LLAMACPP_BUILTIN = (
    "chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1", "mistral-v3",
    "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4", "falcon3", "zephyr", "monarch", "gemma",
    "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "deepseek2", "deepseek3", "deepseek-ocr", "command-r",
    "llama3", "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3", "exaone4", "exaone-moe", "rwkv-world",
    "granite", "granite-4.0", "granite-4.1", "gigachat", "megrez", "yandex", "bailing", "bailing-think", "bailing2",
    "llama4", "smolvlm", "hunyuan-moe", "gpt-oss", "hunyuan-dense", "hunyuan-vl", "kimi-k2", "grok-2",
    "pangu-embedded", "solar-open",
)
# Where a service's template file is in its container.
CONTAINER_DIR = "/run/chat-templates"
# A template longer than this is a mistake (the largest published templates are about 20 kB).
MAX_BYTES = 1024 * 1024
STOP_MAX = 16


def kind(value):
    """``builtin``, ``file`` or ``inline`` for a service's ``chat_template``, or ``None`` when it is none of them."""
    if not isinstance(value, str) or not value.strip():
        return None
    if "{%" in value or "{{" in value:
        return "inline"
    if value in LLAMACPP_BUILTIN:
        return "builtin"
    if os.path.isabs(value):
        return "file"
    return None


def errors(service, where, engine, read=None):
    """Messages for a service's ``chat_template`` and ``stop``. ``read(path)`` returns a file's text on the
    controller (``None`` when there is no such file); without it, files are not looked at."""
    found = []
    value = service.get("chat_template")
    if value is not None:
        what = kind(value)
        if what is None:
            found.append(f"{where}.chat_template must be one of llama.cpp's built-in template names "
                         f"({', '.join(LLAMACPP_BUILTIN[:6])} ... {len(LLAMACPP_BUILTIN)} in all), the absolute path "
                         f"of a Jinja file on the controller, or a Jinja template (got {value!r})")
        elif what == "builtin" and engine == "vllm":
            found.append(f"{where}.chat_template {value!r} is a llama.cpp built-in name; vLLM takes a Jinja "
                         f"template: give the path of a Jinja file or the template itself")
        elif what == "file" and read is not None:
            text = read(value)
            if text is None:
                found.append(f"{where}.chat_template: there is no file {value} on the controller")
            else:
                found += _jinja_errors(text, f"{where}.chat_template ({value})")
        elif what == "inline":
            found += _jinja_errors(value, f"{where}.chat_template")
    stop = service.get("stop")
    if stop is not None:
        if engine == "vllm":
            found.append(f"{where}.stop is a llama.cpp setting; a vLLM client sends its own stop strings")
        elif (not isinstance(stop, list) or not stop or len(stop) > STOP_MAX
              or not all(isinstance(s, str) and s for s in stop)):
            found.append(f"{where}.stop must be a list of 1 to {STOP_MAX} non-empty strings (got {stop!r})")
    return found


def _jinja_errors(text, where):
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        return [f"{where} is longer than {MAX_BYTES} bytes: is it a template?"]
    try:
        import jinja2  # the controller has it (Ansible needs it); the hosts never run this
    except ImportError:  # pragma: no cover - Ansible depends on jinja2
        return []
    try:
        jinja2.Environment(extensions=["jinja2.ext.loopcontrols"]).parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [f"{where} is not a valid Jinja template: {exc.message} (line {exc.lineno})"]
    return []


def file_name(service):
    """The name of a service's template file in the stack (``<service>.jinja``)."""
    return f"{service['name']}.jinja"


def llamacpp_flags(service):
    """llama-server's flags for a service's ``chat_template`` and ``stop``."""
    flags = []
    value = service.get("chat_template")
    what = kind(value)
    if what == "builtin":
        # llama.cpp takes a built-in name only without Jinja; with Jinja it reads the name as a template.
        flags += ["--no-jinja", "--chat-template", value]
    elif what in ("file", "inline"):
        flags += ["--chat-template-file", f"{CONTAINER_DIR}/{file_name(service)}"]
    for stop in service.get("stop") or []:
        # llama-server processes escapes in the argument: a backslash stays a backslash only when doubled.
        flags += ["--reverse-prompt", stop.replace("\\", "\\\\")]
    return flags


def vllm_flags(service):
    if kind(service.get("chat_template")) in ("file", "inline"):
        return ["--chat-template", f"{CONTAINER_DIR}/{file_name(service)}"]
    return []


def needs_file(service):
    return kind(service.get("chat_template")) in ("file", "inline")


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe(service, gguf=None):
    """Where a service's chat template comes from, for reports and warnings.

    ``gguf`` is what gguf_metadata read from the served file (``None`` when the file was not read). Returns a dict:
    ``source`` (``service``, ``gguf``, ``chatml-fallback`` or ``unknown``), ``name`` (the built-in name, the file,
    ``inline``, the GGUF's model name) and ``warning`` (a message, or ``None``).
    """
    value = service.get("chat_template")
    what = kind(value)
    if what == "builtin":
        return {"source": "service", "name": f"built-in {value}", "warning": None}
    if what == "file":
        return {"source": "service", "name": os.path.basename(value), "warning": None}
    if what == "inline":
        return {"source": "service", "name": "inline Jinja", "warning": None}
    if gguf is None:
        return {"source": "unknown", "name": None, "warning": None}
    if gguf.get("chat_template"):
        return {"source": "gguf", "name": gguf.get("name") or gguf.get("architecture") or "the GGUF's", "warning": None}
    return {"source": "chatml-fallback", "name": "chatml", "warning": (
        f"gpufleet_services ({service['name']}): {gguf.get('file', 'the served GGUF file')} carries no chat template "
        f"(tokenizer.chat_template) and the service sets none, so llama-server falls back to ChatML, which most "
        f"models were not trained on (answers then run on or show <|im_start|> markers). Set chat_template on the "
        f"service: a llama.cpp built-in name such as "
        f"{_builtin_guess(gguf.get('architecture')) or 'gemma or llama3'}, or a Jinja file.")}


def _builtin_guess(architecture):
    """The built-in template most models of an architecture use (a hint for the warning only)."""
    architecture = str(architecture or "")
    for prefix, name in (("gemma", "gemma"), ("llama", "llama3"), ("qwen", "chatml"), ("phi3", "phi3"),
                         ("mistral", "mistral-v7"), ("granite", "granite"), ("gpt-oss", "gpt-oss")):
        if architecture.startswith(prefix):
            return name
    return None
