# syntax=docker/dockerfile:1
# Bulkhead broker image: multi-stage, production dependencies only, non-root, read-only root filesystem.
#
#   docker build -t bulkhead .
#   docker run --read-only --tmpfs /tmp -v bulkhead-data:/var/lib/bulkhead -p 127.0.0.1:8700:8700 bulkhead
#   docker run ... bulkhead serve --config /etc/bulkhead/policy.yaml --host 0.0.0.0 --port 8700
#
# The only writable paths the broker needs are its data dir (/var/lib/bulkhead, a volume: keys,
# revocations, audit, local secrets) and /tmp (a tmpfs); /run/bulkhead is for a unix socket shared with
# a sidecar MCP server (serve --listen unix:/run/bulkhead/broker.sock). docs/deploy.md has the details.
# test/integration/dockerfile.test.ts runs this file's ENTRYPOINT + CMD and HEALTHCHECK against the
# built tree, so the command here is the one CI runs.

ARG NODE_IMAGE=node:24-bookworm-slim

# 1. Production dependencies only (no compiler, test or bench packages in the final image).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-fund --no-audit

# 2. The build: every dependency, then tsc and the console bundle (npm run build).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY tsconfig.json ./
COPY scripts/build-console.mjs scripts/
COPY src src
COPY adapters adapters
COPY rotation rotation
COPY bench bench
COPY examples examples
RUN npm run build

# 3. The runtime: node, the production node_modules and the compiled tree; nothing writable but the
#    data dir and the socket dir, both owned by the unprivileged `node` user (uid 1000) of the base image.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    BULKHEAD_DATA_DIR=/var/lib/bulkhead
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/package.json ./
COPY --from=build /app/dist dist
RUN mkdir -p /var/lib/bulkhead /run/bulkhead \
 && chown node:node /var/lib/bulkhead /run/bulkhead \
 && chmod 0700 /var/lib/bulkhead /run/bulkhead
USER node
VOLUME ["/var/lib/bulkhead"]
EXPOSE 8700
# node, not curl (the image has none). A TLS-enabled broker (broker.tls) overrides BULKHEAD_HEALTH_URL.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.BULKHEAD_HEALTH_URL || 'http://127.0.0.1:8700/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# exec form: node is PID 1's only process, so `docker stop` (SIGTERM) reaches the broker directly.
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8700"]
