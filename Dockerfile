# Concierge: protocol-aware TCP front proxy. See README.md ("Docker") and docs/operations.md ("Docker").

# --- build: all dependencies, compile src/, proxies/, relay/, demo/ to dist/ -----------------
# The full node image has g++, make and python3 for the optional splice(2) addon (native/splice).
FROM node:20-bookworm AS build
WORKDIR /app
COPY package*.json tsconfig*.json ./
COPY native ./native
COPY src ./src
COPY proxies ./proxies
COPY relay ./relay
COPY demo ./demo
# `npm ci` runs the "prepare" script (tsc -p tsconfig.build.json) and builds native/splice;
# then the dev dependencies go (--ignore-scripts: nothing to rebuild), and the addon's objects.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf native/splice/build/Release/obj.target native/splice/build/Release/.deps

# --- runtime: production dependencies, dist/ and the built addon only -------------------------
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

# node_modules/@concierge/splice links to ../../native/splice: both keep their relative places.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/native ./native
COPY --from=build /app/dist ./dist
# The demo's data (maildirs, FTP roots) and its config; the relay's demo spool must be writable.
COPY --from=build /app/demo ./demo
COPY tenants.json ./
RUN mkdir -p demo/relay-spool && chown node demo/relay-spool

USER node

# The admin listener's /healthz (configure `"admin": { "port": 9110 }`, or set this to yours).
# Node's own fetch: the slim image has no curl. 503 while draining after SIGTERM counts as unhealthy.
ENV CONCIERGE_HEALTH_URL=http://127.0.0.1:9110/healthz
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.CONCIERGE_HEALTH_URL).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

EXPOSE 110 21 25 587 995 465 990 1110
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start", "--config", "/etc/concierge/tenants.json"]
