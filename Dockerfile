# The kgrec API image (docker-compose.yml builds it). The graph runs in the neo4j service.

# The merchandiser page (/ui), bundled from npm packages at build time: no CDN at run time.
FROM node:20-slim AS ui
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/src ./src
RUN npm run build

FROM python:3.11-slim

# Optional extra package index, e.g. the PyTorch CPU-only wheel index for a much smaller image.
ARG PIP_EXTRA_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KGREC_HOME=/var/lib/kgrec

WORKDIR /app
COPY pyproject.toml README.md ./
COPY graph ./graph
COPY gnn ./gnn
COPY forecasting ./forecasting
COPY recommender ./recommender
COPY api ./api
COPY cypher ./cypher
COPY --from=ui /ui/dist ./ui/dist
RUN pip install --no-cache-dir ${PIP_EXTRA_INDEX_URL:+--extra-index-url "$PIP_EXTRA_INDEX_URL"} . \
    && useradd --system --home-dir /var/lib/kgrec --create-home kgrec

USER kgrec
EXPOSE 8000
CMD ["kgrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
