# Debian's Caddy (2.6.2) laid out as the official caddy image: config in
# /etc/caddy, state in /data and /config, `caddy run` in the foreground.
# deploy/compose/caddy.Dockerfile adds the web pages on top (CADDY_IMAGE).
FROM focus/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends caddy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data /config /etc/caddy
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
WORKDIR /srv
EXPOSE 8080
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
