# Debian's redis-server in place of redis:7-alpine: the compose file gives the
# command line; like the official image it runs as `redis` in /data.
FROM focus/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# The official image's redis-server runs with protected mode off (the compose
# network is its protection); Debian's, started with no config file, would
# refuse every client not on loopback.
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$1\" = redis-server ]; then set -- \"$@\" --protected-mode no; fi; exec \"$@\"", "--"]
CMD ["redis-server"]
