# Concierge: protocol-aware TCP front proxy. See README.md, section "Docker".
FROM node:20-bookworm-slim

WORKDIR /app

# Sources first: `npm ci` runs the "prepare" script, which builds dist/ from them
# (tsc -p tsconfig.build.json over src/, proxies/, relay/ and demo/).
COPY package*.json tsconfig*.json ./
COPY src ./src
COPY proxies ./proxies
COPY relay ./relay
COPY demo ./demo
COPY tenants.json ./

RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && mkdir -p demo/relay-spool && chown node demo/relay-spool

ENV NODE_ENV=production
USER node

EXPOSE 1110
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start", "--config", "/etc/concierge/tenants.json"]
