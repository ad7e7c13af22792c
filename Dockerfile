# Concierge: protocol-aware TCP front proxy. See README.md, section "Docker".
# Built in the full node image, which has g++, make and python3 for the optional splice(2) addon
# (native/splice); the runtime image has no compiler and takes the built /app as it is.
FROM node:20-bookworm AS build

WORKDIR /app

# Sources first: `npm ci` runs the "prepare" script, which builds dist/ from them
# (tsc -p tsconfig.build.json over src/, proxies/ and demo/), and builds native/splice.
COPY package*.json tsconfig*.json ./
COPY native ./native
COPY src ./src
COPY proxies ./proxies
COPY demo ./demo
COPY tenants.json ./

RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf native/splice/build/Release/obj.target native/splice/build/Release/.deps

FROM node:20-bookworm-slim

WORKDIR /app
COPY --from=build /app /app

ENV NODE_ENV=production
USER node

EXPOSE 1110
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start", "--config", "/etc/concierge/tenants.json"]
