# ctxsearch API and embed worker (the same image; docker-compose.yml runs one of each).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    CTXSEARCH_LOG_FORMAT=json

WORKDIR /app

# The CPU build of the pinned torch first: the default index would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md requirements.lock ./
COPY app ./app
COPY embeddings ./embeddings
COPY sql ./sql
COPY client ./client
COPY bench ./bench
COPY evals ./evals
# A plain install of the locked set (the CPU torch above satisfies its pin); the migrations
# are package data, so nothing is read from /app at run time.
RUN pip install -c requirements.lock . && useradd --create-home --uid 10001 ctxsearch

USER ctxsearch
EXPOSE 8080

# Liveness of the API; compose overrides it for the worker, which serves no HTTP.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

CMD ["ctxsearch", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-worker"]
