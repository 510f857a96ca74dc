# syntax=docker/dockerfile:1
# The compose stack's Caddy: the official image with the web pages (web/, built
# by `npm run build:web`) in /srv/web, where public-entry.caddy finds them
# (WEB_ROOT). The Caddyfiles stay mounted by docker-compose.yml, as before.
# Build context: the repository root.

FROM node:20-bookworm-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./web
# The page bundles the app's client helper.
COPY backend/src/client ./backend/src/client
RUN npm run build:web

FROM caddy:2.11-alpine
ENV WEB_ROOT=/srv/web
COPY --from=web /app/web/dist /srv/web
