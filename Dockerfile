# agentd: one container = one workspace (ARCHITECTURE.md §9).
# Build stage: install with dev dependencies, build dist/ (npm ci runs the prepare script).
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ git && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY tsconfig.json ./
COPY src ./src
COPY gen ./gen
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

# Runtime stage: Chromium for the browser tool, ripgrep for glob/grep, a non-root user, a data volume.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium ripgrep git curl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 agentd \
 && mkdir -p /workspace /data && chown agentd:agentd /workspace /data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER agentd
ENV WORKSPACE_BASE=/workspace \
    AGENTD_DATA_DIR=/data \
    AGENTD_HOST=0.0.0.0 \
    AGENTD_PORT=8000 \
    CHROMIUM_PATH=/usr/bin/chromium
VOLUME ["/data", "/workspace"]
EXPOSE 8000
# Same entry point as `npm start`. A session key (OH_SESSION_API_KEYS_0) is required to listen on
# 0.0.0.0; without one the server refuses to start rather than run unauthenticated.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/agentd.mjs"]
CMD ["serve"]
