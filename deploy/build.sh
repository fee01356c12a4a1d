#!/usr/bin/env bash
# Build the one minik8s image, offline with respect to container registries:
#
#   1. minik8s/debian-base:bookworm  a debootstrap (minbase) Debian root, `docker import`ed;
#                                    rebuilt only when its recipe (label) changes
#   2. deploy/.wheels/{deps,app}     wheels built on the host (pip inside a container cannot
#                                    verify PyPI); app rebuilt only when the sources change,
#                                    deps only when the pinned dependency set changes
#   3. minik8s/minik8s:<version>-<hash> and :latest, from deploy/Dockerfile: every component,
#                                    etcd, a Docker engine (for nodes), iptables; skipped when
#                                    the tag for the current inputs exists
#
# Usage: deploy/build.sh [--print-tag]   (env: DEBIAN_MIRROR, MINIK8S_VENV, MINIK8S_BUILD_PRUNE)
# Prints timings; the last line of stdout is the image tag.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=minik8s/debian-base:bookworm
REPO=minik8s/minik8s
LABEL=io.minik8s.content-hash
OWNER_LABEL=io.minik8s.build=deploy      # every image this script makes carries it
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
WHEELS=deploy/.wheels

log() { echo "build: $*" >&2; }
die() { echo "build: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

command -v docker >/dev/null 2>&1 || die "no docker client (run scripts/install-deps.sh)"
docker info >/dev/null 2>&1 || die "docker does not answer (run scripts/start-docker.sh)"

venv=${MINIK8S_VENV:-}
if [ -z "$venv" ]; then
  for v in .venv /tmp/venv; do [ -x "$v/bin/pip" ] && { venv=$v; break; }; done
fi
if [ -z "$venv" ] || [ ! -x "$venv/bin/pip" ]; then die "no virtualenv with pip (run: make venv)"; fi
pip=("$venv/bin/pip" --disable-pip-version-check -q)

# one build at a time on this machine; a second run waits, then finds everything cached
exec 9>"${TMPDIR:-/tmp}/minik8s-deploy-build.lock"
flock 9
tmp=$(mktemp -d "${TMPDIR:-/tmp}/minik8s-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t_all=$(now)

# ---------------------------------------------------------------- 1. the Debian base
# The recipe is what decides the root filesystem; bump BASE_RECIPE to force a rebuild.
BASE_RECIPE=1
base_hash=$(printf '%s\n' "recipe=$BASE_RECIPE" "suite=$SUITE" "variant=minbase" \
            "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)" | sha256sum | cut -d' ' -f1)
t=$(now)
if [ "$(label_of "$BASE")" = "$base_hash" ]; then
  log "$BASE: up to date"
else
  command -v debootstrap >/dev/null 2>&1 || die "no debootstrap (run scripts/install-deps.sh)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  log "$BASE: debootstrap --variant=minbase $SUITE from $MIRROR ..."
  rootfs=$tmp/rootfs
  if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
  # small image: no docs, no caches (as the official Debian images do)
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/excludes" <<'EXCL'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
EXCL
  echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/99minik8s-no-recommends"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  rm -rf "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  old=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null || true)
  tar -C "$rootfs" --numeric-owner -cf - . | docker import \
      --change "LABEL $LABEL=$base_hash" --change "LABEL $OWNER_LABEL" \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  # drop the previous base if nothing uses it any more (no -f: refused while in use)
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$BASE")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  log "$BASE: built in $(since "$t")"
fi

# ---------------------------------------------------------------- 2. wheels
# app: the project itself, built from a copy of its sources (no build/ or egg-info in the tree)
packages=(minik8s apiserver scheduler controller_manager kubelet proxy)
src_hash=$(
  { sha256sum pyproject.toml README.md
    find "${packages[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' \
      | LC_ALL=C sort | xargs -r sha256sum
  } | sha256sum | cut -d' ' -f1)
mkdir -p "$WHEELS"
t=$(now)
if [ "$(cat "$WHEELS/app.hash" 2>/dev/null)" = "$src_hash" ] && ls "$WHEELS"/app/*.whl >/dev/null 2>&1; then
  log "wheel minik8s: up to date"
else
  mkdir -p "$tmp/src"
  cp -a pyproject.toml README.md "${packages[@]}" "$tmp/src/"
  find "$tmp/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
  rm -rf "$WHEELS/app" "$WHEELS/app.hash"
  "${pip[@]}" wheel --no-deps -w "$WHEELS/app" "$tmp/src" >"$tmp/wheel.log" 2>&1 \
    || { cat "$tmp/wheel.log" >&2; die "pip wheel of the project failed"; }
  echo "$src_hash" >"$WHEELS/app.hash"
  log "wheel minik8s: built in $(since "$t")"
fi

# deps: the runtime requirements of the wheel, pinned to the versions in the venv
app_wheels=("$WHEELS"/app/*.whl)
app_whl=${app_wheels[0]}
"$venv/bin/python" - "$app_whl" >"$tmp/requirements.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            print(line.split(":", 1)[1].strip())
PY
"$venv/bin/pip" --disable-pip-version-check freeze --exclude-editable 2>/dev/null \
  | grep -v -e '^#' -e '^-e ' -e '^minik8s' >"$tmp/constraints.txt" || true
deps_hash=$(cat "$tmp/requirements.txt" "$tmp/constraints.txt" | sha256sum | cut -d' ' -f1)
t=$(now)
if [ "$(cat "$WHEELS/deps.hash" 2>/dev/null)" = "$deps_hash" ] && ls "$WHEELS"/deps/*.whl >/dev/null 2>&1; then
  log "dependency wheels: up to date"
else
  rm -rf "$WHEELS/deps" "$WHEELS/deps.hash"
  "${pip[@]}" wheel -w "$WHEELS/deps" -r "$tmp/requirements.txt" -c "$tmp/constraints.txt" \
      >"$tmp/wheel.log" 2>&1 || { cat "$tmp/wheel.log" >&2; die "pip wheel of the dependencies failed"; }
  echo "$deps_hash" >"$WHEELS/deps.hash"
  dep_wheels=("$WHEELS"/deps/*.whl)
  log "dependency wheels: ${#dep_wheels[@]} built in $(since "$t")"
fi

# ---------------------------------------------------------------- 3. the image
version=$(awk -F'"' '/^version *=/ { print $2; exit }' pyproject.toml)
image_hash=$(
  { docker image inspect -f '{{.Id}}' "$BASE"
    sha256sum deploy/Dockerfile deploy/node-entrypoint.sh deploy/.dockerignore
    echo "$src_hash $deps_hash"
  } | sha256sum | cut -d' ' -f1)
tag=$REPO:$version-${image_hash:0:12}
t=$(now)
if docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag: up to date"
else
  log "$tag: docker build ..."
  if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$BASE" \
        --label "$LABEL=$image_hash" --label "$OWNER_LABEL" --label "io.minik8s.version=$version" \
        -t "$tag" -f deploy/Dockerfile deploy >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    die "docker build failed"
  fi
  log "$tag: built in $(since "$t")"
fi
docker tag "$tag" "$REPO:latest"
# drop older builds of this script (not in use: `docker image rm` without -f refuses those);
# MINIK8S_BUILD_PRUNE=0 keeps them (several worktrees building on one engine)
[ "${MINIK8S_BUILD_PRUNE:-1}" = 0 ] || docker image ls --filter "label=$OWNER_LABEL" --format '{{.Repository}}:{{.Tag}}' "$REPO" \
  | grep -v -x -e "$tag" -e "$REPO:latest" | xargs -r docker image rm >/dev/null 2>&1 || true
log "tagged $REPO:latest (all done in $(since "$t_all"))"
echo "$tag"
