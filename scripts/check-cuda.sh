#!/usr/bin/env bash
# `make check-cuda`: compile llama.cpp's CUDA backend with exactly the CMake flags that
# the gpufleet.inference.llamacpp_cmake_flags filter computes for the cuda backend, once
# per architecture (default: 121 for GB10 / DGX Spark and 90 for H100/H200), with a CUDA 13
# toolchain made of NVIDIA's PyPI wheels. Needs no GPU.
#
#   scripts/check-cuda.sh [ARCH ...]     e.g. scripts/check-cuda.sh 121 90 "90;121"
#
# For each architecture it
#   1. asks the filter for its flags (ansible localhost -m debug, through the collection),
#   2. configures the llama.cpp tree of .cache/sources/llama.cpp-src.tar.gz with those flags
#      (plus where the toolkit is: CUDAToolkit_ROOT, CMAKE_CUDA_COMPILER),
#   3. compiles CUDA code from the generated build system:
#      - by default a representative subset of ggml-cuda's objects (SUBSET below: the backend's
#        main file, mat-vec, two matmul kernels among them the FP4 one that needs Blackwell's
#        arch-specific 12Xa target, one flash-attention kernel), because the whole library is
#        ~144 nvcc compilations, about 30 minutes per architecture on 2 cores;
#      - with CHECK_CUDA_FULL=1, the whole ggml-cuda library (libggml-cuda.so, linked);
#   4. checks with cuobjdump that the device code (SASS) and PTX in what was built are for the
#      architectures llama.cpp reports it used, and only those, and that these are the
#      architectures the filter asked for (llama.cpp turns 12X into 12Xa by itself).
#
# The toolchain venv (.cache/cuda-venv, from requirements/cuda.txt), the source tree and the
# build trees (.cache/cuda-check/) are kept: a second run reconfigures and finds the objects
# up to date. The log is .cache/results/check-cuda.log, the summary .cache/results/check-cuda.txt.
#
# Environment: CHECK_CUDA_FULL=1 (whole library), CHECK_CUDA_JOBS (default: nproc),
# CHECK_CUDA_WORK (build directory, default .cache/cuda-check), CHECK_CUDA_VENV.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT"

ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(121 90)
FULL=${CHECK_CUDA_FULL:-0}
JOBS=${CHECK_CUDA_JOBS:-$(nproc)}
VENV=${VENV:-$GPUFLEET_ROOT/.venv}
mkdir -p "$GPUFLEET_CACHE"
CACHE=$(cd -P "$GPUFLEET_CACHE" && pwd)  # one real path, so that the checkout and its worktrees share build trees
CUDA_VENV=${CHECK_CUDA_VENV:-$CACHE/cuda-venv}
WORK=${CHECK_CUDA_WORK:-$CACHE/cuda-check}
RESULTS=$GPUFLEET_CACHE/results
ARCHIVE=$GPUFLEET_CACHE/sources/llama.cpp-src.tar.gz
REQUIREMENTS=requirements/cuda.txt

# Objects of the ggml-cuda target compiled by default (paths relative to its directory).
SUBSET=(
  ggml-cuda.cu.o
  mmvq.cu.o
  template-instances/mmq-instance-q4_0.cu.o
  template-instances/mmq-instance-mxfp4.cu.o
  template-instances/fattn-mma-f16-instance-ncols1_4-ncols2_4.cu.o
)

mkdir -p "$RESULTS" "$WORK"
LOG=$RESULTS/check-cuda.log
SUMMARY=$RESULTS/check-cuda.txt
: >"$SUMMARY"
exec > >(tee "$LOG") 2>&1

say() { echo "$*" | tee -a "$SUMMARY"; }
now() { date +%s; }
# CPU seconds (user + system) used so far by the commands this script waited for: with other work
# on the machine the wall-clock time says little, the CPU time does.
# Sets CPU; `times` must run in this shell, not in a $(...) subshell.
cpu_now() {
  times >"$WORK/.times"
  CPU=$(awk 'NR == 2 { sub(/m/, " ", $1); sub(/m/, " ", $2); split($1, u, " "); split($2, s, " ");
                       printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/.times")
}

# --- host compilers (CMake configures llama.cpp's C and C++ code too; nvcc needs g++) ---
if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
  log "installing build-essential"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends build-essential >/dev/null
fi

# --- the CUDA toolchain from PyPI ---
t=$(now)
stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [ ! -f "$CUDA_VENV/.installed" ] || [ "$(cat "$CUDA_VENV/.installed")" != "$stamp" ]; then
  log "installing the CUDA toolchain into $CUDA_VENV (about 1 GB unpacked)"
  rm -rf "$CUDA_VENV"
  python3 -m venv "$CUDA_VENV"
  "$CUDA_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$stamp" >"$CUDA_VENV/.installed"
fi
CUDA=$("$CUDA_VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
# The wheels unpack into one tree, nvidia/cu13/{bin,include,lib,nvvm}, that is a toolkit but for
# what a package manager adds:
# - nvcc.profile looks for headers and libraries under targets/x86_64-linux/ (as in /usr/local/cuda);
# - only versioned libraries ship (libcudart.so.13), so the linker and FindCUDAToolkit find no libcudart.so;
# - no libcuda.so stub: the driver library is not in any wheel. ggml-cuda links CUDA::cuda_driver, so
#   FindCUDAToolkit must find one in lib/stubs; an empty library named like the driver's stands in,
#   which is enough for configuring, compiling and linking a shared library (it is never loaded).
mkdir -p "$CUDA/targets/x86_64-linux" "$CUDA/lib/stubs"
ln -sfn ../../include "$CUDA/targets/x86_64-linux/include"
ln -sfn ../../lib "$CUDA/targets/x86_64-linux/lib"
for lib in cudart cublas cublasLt; do
  ln -sfn "lib$lib.so.13" "$CUDA/lib/lib$lib.so"
done
if [ ! -f "$CUDA/lib/stubs/libcuda.so" ]; then
  echo '/* stand-in for the toolkit stub of the driver library */' >"$CUDA/lib/stubs/libcuda-stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA/lib/stubs/libcuda.so" "$CUDA/lib/stubs/libcuda-stub.c"
fi
export PATH=$CUDA/bin:$CUDA_VENV/bin:$PATH
say "toolchain: nvcc $(nvcc --version | sed -n 's/^Cuda compilation tools, //p'), $(cmake --version | sed -n 1p), $(g++ --version | sed -n 1p) ($(( $(now) - t )) s)"

# --- the llama.cpp tree ---
[ -s "$ARCHIVE" ] || scripts/fetch-demo-inputs.sh source
archive_sum=$(sha256sum "$ARCHIVE" | cut -d' ' -f1)
if [ ! -f "$WORK/src/.archive" ] || [ "$(cat "$WORK/src/.archive")" != "$archive_sum" ]; then
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar -xzf "$ARCHIVE" -C "$WORK/src"
  echo "$archive_sum" >"$WORK/src/.archive"
fi
SRC=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d)  # the archive's one top-level directory
top=$(basename "$SRC")
ggml_version=$(sed -nE 's/^set\(GGML_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)\)/\2/p' "$SRC/ggml/CMakeLists.txt" | paste -sd.)
say "llama.cpp: $top (ggml $ggml_version), archive sha256 $archive_sum"
say "mode: $([ "$FULL" = 1 ] && echo "full ggml-cuda library" || echo "subset of ${#SUBSET[@]} objects (CHECK_CUDA_FULL=1 for the library)"), $JOBS jobs"

# The flags, one per line, exactly as the filter computes them.
filter_flags() {
  ANSIBLE_COLLECTIONS_PATH=$GPUFLEET_ROOT/collections ANSIBLE_LOAD_CALLBACK_PLUGINS=true \
  ANSIBLE_STDOUT_CALLBACK=ansible.builtin.json \
    "$VENV/bin/ansible" localhost -c local -i localhost, -m ansible.builtin.debug \
      -a "msg={{ 'cuda' | gpufleet.inference.llamacpp_cmake_flags(cuda_architectures='$1') }}" \
  | "$VENV/bin/python" -c '
import json, sys
result = json.load(sys.stdin)["plays"][0]["tasks"][0]["hosts"]["localhost"]
if result.get("failed") or not isinstance(result.get("msg"), list):
    sys.exit("llamacpp_cmake_flags failed: %s" % result.get("msg"))
print("\n".join(result["msg"]))'
}

# "121a;90-real" -> "121 90" (the architectures' numbers, for comparing with what was asked).
arch_numbers() { tr ';' '\n' <<<"$1" | sed -E 's/^([0-9]+).*/\1/' | sort -u | paste -sd' '; }

# Names cuobjdump gives the cubins (-lelf) or PTX (-lptx) in FILE..., e.g. "sm_121a".
listed_archs() {
  local kind=$1; shift
  local f
  # cuobjdump exits non-zero for a file without code of that kind: that is an empty list here.
  for f in "$@"; do cuobjdump "-l$kind" "$f" 2>/dev/null || true; done \
    | { grep -oE 'sm_[0-9]+[a-z]?\.(cubin|ptx)$' || true; } | sed -E 's/\.(cubin|ptx)$//' | sort -u | paste -sd' '
}

check_arch() {
  local arch=$1 t0 t c0 c build_dir flags=() used cache want_sass="" want_ptx="" a base objects=() sass ptx o
  t0=$(now); cpu_now; c0=$CPU
  local valid='^[0-9a-z;,-]+$'
  if ! [[ $arch =~ $valid ]]; then say "cuda $arch: FAIL (not an architecture list)"; return 1; fi
  mapfile -t flags < <(filter_flags "$arch") || true
  if [ ${#flags[@]} -eq 0 ]; then say "cuda $arch: FAIL (llamacpp_cmake_flags returned nothing)"; return 1; fi
  echo "cuda $arch: filter flags: ${flags[*]}"
  build_dir=$WORK/build-${arch//[;,]/_}
  # Other flags than last time: start from an empty build tree, so that no cached value survives.
  if [ -f "$build_dir/.flags" ] && [ "$(cat "$build_dir/.flags")" != "${flags[*]}" ]; then
    rm -rf "$build_dir"
  fi
  mkdir -p "$build_dir"

  t=$(now)
  if ! nice -n 15 cmake -S "$SRC" -B "$build_dir" "${flags[@]}" \
        -DCUDAToolkit_ROOT="$CUDA" -DCMAKE_CUDA_COMPILER="$CUDA/bin/nvcc" >"$build_dir/configure.log" 2>&1; then
    cat "$build_dir/configure.log"
    say "cuda $arch: FAIL (configure, see $LOG)"
    return 1
  fi
  cat "$build_dir/configure.log"
  echo "${flags[*]}" >"$build_dir/.flags"
  # The toolkit used must be the wheels', not one that happens to be installed on the machine.
  cache=$build_dir/CMakeCache.txt
  for a in CMAKE_CUDA_COMPILER CUDA_cudart_LIBRARY CUDA_cublas_LIBRARY; do
    if ! grep -qE "^$a:[A-Z]+=$CUDA/" "$cache"; then
      say "cuda $arch: FAIL ($a is $(grep -E "^$a:" "$cache" | cut -d= -f2-), not from $CUDA)"
      return 1
    fi
  done
  used=$(sed -nE 's/^-- Using CMAKE_CUDA_ARCHITECTURES=([^ ]*).*/\1/p' "$build_dir/configure.log" | tail -n1)
  [ -n "$used" ] || used=$arch
  if [ "$(arch_numbers "$used")" != "$(arch_numbers "$arch")" ]; then
    say "cuda $arch: FAIL (llama.cpp builds for $used, not for the cuda_architectures $arch given to the filter)"
    return 1
  fi
  say "cuda $arch: configured OK ($(( $(now) - t )) s): llama.cpp uses CMAKE_CUDA_ARCHITECTURES=$used"

  t=$(now); cpu_now; c=$CPU
  if [ "$FULL" = 1 ]; then
    if ! nice -n 15 cmake --build "$build_dir" --target ggml-cuda -j "$JOBS"; then
      say "cuda $arch: FAIL (building ggml-cuda, see $LOG)"
      return 1
    fi
    cpu_now
    objects=("$build_dir/bin/libggml-cuda.so")
    say "cuda $arch: ggml-cuda built and linked ($(( $(now) - t )) s, CPU $(( CPU - c )) s): $(find "$build_dir/ggml/src/ggml-cuda" -name '*.cu.o' | wc -l) objects, bin/libggml-cuda.so $(du -h "${objects[0]}" | cut -f1)"
  else
    if ! nice -n 15 make -C "$build_dir/ggml/src/ggml-cuda" -j "$JOBS" "${SUBSET[@]}"; then
      say "cuda $arch: FAIL (compiling, see $LOG)"
      return 1
    fi
    cpu_now
    for o in "${SUBSET[@]}"; do objects+=("$build_dir/ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/$o"); done
    say "cuda $arch: ${#SUBSET[@]} objects compiled ($(( $(now) - t )) s, CPU $(( CPU - c )) s): ${SUBSET[*]}"
  fi

  # No suffix: SASS and PTX; -real: SASS only; -virtual: PTX only.
  for a in ${used//;/ }; do
    base=${a%-real}; base=${base%-virtual}
    [[ $a == *-virtual ]] || want_sass+=" sm_$base"
    [[ $a == *-real ]] || want_ptx+=" sm_$base"
  done
  want_sass=$(tr ' ' '\n' <<<"$want_sass" | sed '/^$/d' | sort -u | paste -sd' ')
  want_ptx=$(tr ' ' '\n' <<<"$want_ptx" | sed '/^$/d' | sort -u | paste -sd' ')
  for o in "${objects[@]}"; do
    sass=$(listed_archs elf "$o")
    ptx=$(listed_archs ptx "$o")
    if [ "$sass" != "$want_sass" ] || [ "$ptx" != "$want_ptx" ]; then
      say "cuda $arch: FAIL ($(basename "$o") holds SASS [$sass] PTX [$ptx], expected SASS [$want_sass] PTX [$want_ptx])"
      return 1
    fi
  done
  say "cuda $arch: SASS found: ${want_sass:-none}, PTX: ${want_ptx:-none}, in each of ${#objects[@]} file(s), nothing else"
  cpu_now
  say "cuda $arch: PASS ($(( $(now) - t0 )) s, CPU $(( CPU - c0 )) s)"
}

failed=0
for arch in "${ARCHS[@]}"; do
  check_arch "$arch" || failed=1
done
say "check-cuda: $([ "$failed" = 0 ] && echo passed || echo FAILED) (log: $LOG)"
exit "$failed"
