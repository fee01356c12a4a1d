#!/usr/bin/env bash
# `make compose-down`: stop the compose cluster of scripts/compose-up.sh and remove
# what it created: the project's containers, its network and its volumes (the nodes'
# Docker engines with their pods), and its state in .work/compose. Only objects
# labelled as the project's are touched. The images stay as a build cache; with
# --images the images built by deploy/build.sh go too.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=${MINIK8S_COMPOSE_PROJECT:-minik8s}
FILE=deploy/docker-compose.yml
STATE=.work/compose/$PROJECT
export MINIK8S_PKI=$PWD/$STATE/pki   # named by docker-compose.yml's volumes
remove_images=0
for arg in "$@"; do
  case $arg in
    --images) remove_images=1 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compose-down: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

if ! timeout 10 docker info >/dev/null 2>&1; then
  echo "compose-down: docker does not answer; nothing to do"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -p "$PROJECT" -f "$FILE")
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose -p "$PROJECT" -f "$FILE")
else
  compose=()
fi
if [ ${#compose[@]} -gt 0 ]; then
  "${compose[@]}" down -v --remove-orphans --timeout 30 || true
fi

# Whatever is still labelled as the project's (compose missing, or interrupted runs). Only
# compose's project label tells projects apart: io.minik8s.compose is "minik8s" in all of them.
by_label() {  # by_label container|network|volume [ls flags] -> ids of the project's objects
  docker "$1" ls -q "${@:2}" --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null | sort -u
}
mapfile -t left < <(by_label container -a)
[ ${#left[@]} -eq 0 ] || docker rm -f -v "${left[@]}" >/dev/null
mapfile -t left < <(by_label network)
[ ${#left[@]} -eq 0 ] || docker network rm "${left[@]}" >/dev/null
mapfile -t left < <(by_label volume)
[ ${#left[@]} -eq 0 ] || docker volume rm "${left[@]}" >/dev/null

if [ "$remove_images" = 1 ]; then
  # the images built on the base first, then the base (a parent cannot go before its children)
  for repo in minik8s/minik8s minik8s/debian-base; do
    mapfile -t imgs < <(docker image ls -q --filter label=io.minik8s.build=deploy "$repo" | sort -u)
    [ ${#imgs[@]} -eq 0 ] || docker image rm -f "${imgs[@]}" >/dev/null || true
  done
  rm -rf deploy/.wheels
  echo "compose-down: removed the images of deploy/build.sh"
fi

# The client config, if it is still the one compose-up wrote.
if [ -f "$STATE/config" ]; then
  home_config=$(.venv/bin/python -c 'from minik8s import config; print(config.default_path())' 2>/dev/null || true)
  if [ -n "$home_config" ] && [ -f "$home_config" ] && cmp -s "$home_config" "$STATE/config"; then
    rm -f "$home_config"
  fi
fi
rm -rf "$STATE"
echo "compose-down: project $PROJECT removed"
