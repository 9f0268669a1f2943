#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection placed where ansible-test wants
# it (ansible_collections/gpufleet/inference), each test in its own virtualenv.
#
# ansible-test bootstraps pip in those virtualenvs with a get-pip script it
# downloads from a host these machines cannot reach, unless a copy is cached.
# scripts/get-pip-standin.py takes the cached copy's place: it installs pip with
# the interpreter's own ensurepip, then the packages ansible-test asked for.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

VENV=${VENV:-$GPUFLEET_ROOT/.venv}
RESULTS=$GPUFLEET_CACHE/results
COPY=${GPUFLEET_SANITY_DIR:-$GPUFLEET_CACHE/sanity}/ansible_collections/gpufleet/inference
mkdir -p "$RESULTS"

# The pip version ansible-test bootstraps (a literal in its requirements code).
pip_version=$(grep -ohE "pip='[0-9.]+'" "$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" \
  | head -n1 | tr -dc '0-9.')
[ -n "$pip_version" ] || die "cannot tell which pip version ansible-test bootstraps"
cached="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$cached" ] || ! grep -q gpufleet-standin "$cached"; then
  if [ -s "$cached" ]; then
    log "keeping the real get-pip $pip_version already cached at $cached"
  else
    mkdir -p "$(dirname "$cached")"
    cp "$GPUFLEET_ROOT/scripts/get-pip-standin.py" "$cached"
  fi
fi

# A clean copy of what git tracks (plus new files not ignored), nothing else.
rm -rf "$COPY"
mkdir -p "$COPY"
(cd "$GPUFLEET_ROOT" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' \
  | xargs -0 -I{} cp --parents -P {} "$COPY"/)
cd "$COPY"
git init -q . && git add -A >/dev/null

# ansible-test takes a directory target only with its trailing slash.
targets=()
for target in "$@"; do
  if [[ $target != -* && -d $target && $target != */ ]]; then target=$target/; fi
  targets+=("$target")
done

set +e
"$VENV/bin/ansible-test" sanity --venv --python "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --color no --truncate 0 "${targets[@]}" 2>&1 | tee "${GPUFLEET_SANITY_LOG:-$RESULTS/sanity.txt}"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
