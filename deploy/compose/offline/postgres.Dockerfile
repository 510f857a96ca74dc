# Debian's PostgreSQL (15, bookworm's) in place of postgres:16-alpine, with an
# entrypoint that honours the same POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB
# and data folder (/var/lib/postgresql/data) as the official image.
FROM focus/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
# pg_isready and initdb straight from the server's folder (the health check calls pg_isready).
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
