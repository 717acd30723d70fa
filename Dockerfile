# The cutover worker (and CLI). The CLI runs from dist/, built here with esbuild (a second);
# the worker bundles the workflow sources itself. pg_dump/pg_restore come from Debian bookworm's postgresql-client (PostgreSQL 15): they
# must be at least as new as the server they dump, so use a newer client for newer servers.
FROM node:20.19.5-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first, so code changes do not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY migrations ./migrations
COPY plans ./plans
COPY scripts/build.mjs ./scripts/
COPY tsconfig.json ./
RUN node scripts/build.mjs

USER node

# SIGTERM reaches node directly (exec form): the worker stops polling and lets activities wind
# down; their heartbeat checkpoints let another worker resume them.
CMD ["node", "bin/cutover.js", "worker"]
