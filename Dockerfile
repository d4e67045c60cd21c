# syntax=docker/dockerfile:1
# portforward-operator: `docker build -t ghcr.io/portforward-dev/portforward-operator:0.1.0 .`
# Three stages: compile TypeScript with the dev dependencies, install the production dependencies
# alone, and a runtime image holding only dist/, the production node_modules and package.json.
# The Node.js version is the one in .nvmrc (a unit test keeps them equal). Pin the base image by
# digest for reproducible builds (node:26.12.1-trixie-slim@sha256:...).
ARG NODE_IMAGE=node:26.12.1-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && rm -f dist/.tsbuildinfo

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: ws loads bufferutil's prebuilt binary when there is one for the platform, and
# falls back to JavaScript when there is not; nothing needs compiling.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="portforward-operator" \
      org.opencontainers.image.description="Declarative, self-healing kubectl port-forward as a Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/portforward-dev/portforward-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
# The operator needs node alone: npm, npx and corepack (and their dependencies' advisories) leave the
# runtime image.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# The image's `node` user, by number, so that runAsNonRoot can verify it is not root.
USER 1000:1000
EXPOSE 8080 8081
# --max-semi-space-size=2: V8's young generation capped at 2 MiB semi-spaces (16 by default), which the
# watch and list responses of a large cluster otherwise fill and keep: 20-50 MiB less RSS idle and with
# 2,000 forwards at no measured cost in time (docs/benchmarks.md, "Scale").
# --external-memory-accounted-in-global-limit: V8 gives the memory outside its heap (the relay's socket
# buffers) a limit of its own instead of adding every byte allocated since the last full collection to
# the old generation's, which made the relay worker mark its whole heap about every 20 MiB relayed:
# 35-56 % less CPU per GiB relayed on kwok, 4-20 % on the real node (ADR 8, second addendum).
# Tests and benchmarks start the operator with the flags of this line (tools/testenv/paths.ts
# operatorNodeFlags).
ENTRYPOINT ["node", "--max-semi-space-size=2", "--external-memory-accounted-in-global-limit", "dist/main.js"]
