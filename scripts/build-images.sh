#!/usr/bin/env bash
# Build the local images minik8s needs (no registry): minik8s/pause:3.9 and minik8s/echo:latest.
# Each image is a `docker import` of a tiny rootfs; it is rebuilt only when the
# sha256 of its inputs differs from its label io.minik8s.content-hash.
set -euo pipefail
cd "$(dirname "$0")/.."
self=scripts/build-images.sh
busybox=${BUSYBOX:-/bin/busybox}

die() { echo "build-images: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker client (run scripts/install-deps.sh)"
docker info >/dev/null 2>&1 || die "docker does not answer (run scripts/start-docker.sh)"
command -v gcc >/dev/null 2>&1 || die "no gcc (run scripts/install-deps.sh)"
[ -x "$busybox" ] || die "no $busybox (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked (apt-get install busybox-static)"
fi

# one build at a time on this machine: a second run waits, then finds the images up to date
exec 9>"${TMPDIR:-/tmp}/minik8s-build-images.lock"
flock 9
tmp=$(mktemp -d "${TMPDIR:-/tmp}/minik8s-images.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# content_hash NAME [EXTRA_FILE...]: sha256 over images/NAME/, this script and the extra files.
content_hash() {
  local name=$1; shift
  {
    (cd "images/$name" && find . -type f | LC_ALL=C sort | xargs -r sha256sum)
    sha256sum "$self" "$@"
  } | sha256sum | cut -d' ' -f1
}

# build NAME TAG ROOTFS_FN [EXTRA_FILE...] -- DOCKER_IMPORT_CHANGE...
build() {
  local name=$1 tag=$2 make_rootfs=$3; shift 3
  local extra=()
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
  local hash have old
  hash=$(content_hash "$name" "${extra[@]}")
  have=$(docker image inspect -f '{{index .Config.Labels "io.minik8s.content-hash"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then
    echo "$tag: up to date"
    return
  fi
  local root="$tmp/$name"
  mkdir -p "$root"
  "$make_rootfs" "$root"
  local changes=(--change "LABEL io.minik8s.content-hash=$hash")
  for c in "$@"; do changes+=(--change "$c"); done
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . \
    | docker import "${changes[@]}" - "$tag" >/dev/null
  # drop the previous build if nothing else uses it (no -f: refused when in use)
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  echo "$tag: built"
}

pause_rootfs() {
  gcc -Os -static -s -Wall -o "$1/pause" images/pause/pause.c
}

echo_rootfs() {
  local root=$1 applet
  cp -a images/echo/rootfs/. "$root/"
  chmod 755 "$root/www/cgi-bin/index.cgi"
  mkdir -p "$root/bin" "$root/root" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
}

build pause minik8s/pause:3.9 pause_rootfs -- \
  'ENTRYPOINT ["/pause"]'
# httpd ignores SIGTERM as PID 1, so a shell that exits 0 on TERM/INT runs it.
build echo minik8s/echo:latest echo_rootfs "$busybox" -- \
  'ENV PATH=/bin' \
  'CMD ["sh", "-c", "trap \"exit 0\" TERM INT; httpd -f -p 8080 -h /www & wait $!"]' \
  'EXPOSE 8080'
