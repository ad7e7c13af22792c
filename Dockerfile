# Concierge: protocol-aware TCP front proxy. See README.md ("Docker") and docs/operations.md ("Docker").

# --- build: all dependencies, compile src/, proxies/, demo/ to dist/ -------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package*.json tsconfig*.json ./
COPY src ./src
COPY proxies ./proxies
COPY demo ./demo
# `npm ci` runs the "prepare" script: tsc -p tsconfig.build.json.
RUN npm ci --no-audit --no-fund

# --- runtime: production dependencies and dist/ only -----------------------------------------
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production

# Ports below 1024 (110, 21, 25) as the unprivileged user: the node binary gets the one
# capability it needs as a file capability (Docker's default capability set includes it).
# With file capabilities Node runs in secure mode and ignores NODE_OPTIONS: pass flags on the
# command line instead. Alternatively drop this step and run with
# `--sysctl net.ipv4.ip_unprivileged_port_start=0` (not possible with --network host: there it
# is the host's own sysctl).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/node)" \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

COPY package*.json ./
# --ignore-scripts: "prepare" would compile, and the compiler is a dev dependency; dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY tenants.json ./

USER node

# The admin listener's /healthz (configure `"admin": { "port": 9110 }`, or set this to yours).
# Node's own fetch: the slim image has no curl. 503 while draining after SIGTERM counts as unhealthy.
ENV CONCIERGE_HEALTH_URL=http://127.0.0.1:9110/healthz
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.CONCIERGE_HEALTH_URL).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

EXPOSE 110 21 25 587 1110
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start", "--config", "/etc/concierge/tenants.json"]
