# codex-proxy in a container: `docker compose up -d` (compose.yaml), or
# `docker build -t codex-proxy . && docker run -p 8080:8080 -v codex-data:/data codex-proxy`.
# Arguments after the image name go to mitmdump (e.g. `--set codex_demo=true`).
FROM python:3.12-slim

COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src \
    && useradd --create-home --uid 10001 codex && mkdir /data && chown codex /data

USER codex
# local.yaml (with the generated proxy key), the SQLite store and mitmproxy's CA live here.
ENV CODEX_PROXY_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["codex-proxy", "--listen-host", "0.0.0.0", "-p", "8080", "--set", "confdir=/data/mitmproxy"]
