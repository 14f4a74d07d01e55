# syntax=docker/dockerfile:1
# Shopcast server image. Build: docker build -t shopcast .   Run: see docker-compose.yml.

# Page libraries (static/node_modules). Node.js and npm are needed only to install them.
FROM python:3.11-slim AS pages
# Debian's versions are fixed by the base image's release; pinning them would break its updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src/static
COPY static/package.json static/package-lock.json ./
# --ignore-scripts: swagger-ui-dist pulls in @scarf/scarf, whose install script reports installs.
# --omit=dev: the AsyncAPI parser and axe-core are for the tests only.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error

# The wheel, with the pages and their libraries inside it (pyproject.toml says which), and the
# SFU's native fan-out, compiled by hatch_build.py (the runtime image needs no compiler).
FROM python:3.11-slim AS wheel
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
COPY --from=pages /src/static/node_modules static/node_modules
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHOPCAST_HOST=0.0.0.0 \
    SHOPCAST_PORT=8080 \
    SHOPCAST_DATA_DIR=/var/lib/shopcast
RUN groupadd --system --gid 10001 shopcast \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/shopcast \
        --shell /usr/sbin/nologin shopcast \
    && install -d -o shopcast -g shopcast -m 0750 /var/lib/shopcast
WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them: the runtime
# lockfile (`make lock`), every release pinned and checked against its hash.
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt && rm requirements.txt

COPY --from=wheel /dist /tmp/dist
RUN pip install --no-deps /tmp/dist/*.whl && rm -r /tmp/dist

USER 10001:10001
VOLUME ["/var/lib/shopcast"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SHOPCAST_PORT', '8080'), timeout=3)"]
CMD ["shopcast", "serve"]
