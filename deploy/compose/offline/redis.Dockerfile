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
CMD ["redis-server"]
