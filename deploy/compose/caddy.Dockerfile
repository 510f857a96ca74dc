# syntax=docker/dockerfile:1
# The compose stack's Caddy: the official image with the web pages (web/, built
# by `npm run build:web`) in /srv/web, where public-entry.caddy finds them
# (WEB_ROOT). The Caddyfiles stay mounted by docker-compose.yml, as before.
# Build context: the repository root. OFFLINE_IMAGES=1 passes images built
# from local parts (offline/build-images.sh: Debian's Caddy 2.6.2).
ARG NODE_IMAGE=node:20-bookworm-slim
ARG CADDY_IMAGE=caddy:2.11-alpine

FROM ${NODE_IMAGE} AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./web
# The page bundles the app's client helper, and the small helpers it shares with the backend.
COPY backend/src/client ./backend/src/client
COPY backend/src/shared ./backend/src/shared
RUN npm run build:web

FROM ${CADDY_IMAGE}
ENV WEB_ROOT=/srv/web
COPY --from=web /app/web/dist /srv/web
