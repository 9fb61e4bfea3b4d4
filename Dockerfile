# imgsim in a container: nginx in front of gunicorn (imgsim proxy), as a user without privileges.
#   docker build -t imgsim .                      (podman build works the same; `make image`)
#   docker build --target index -t imgsim-index .  (the same plus TensorFlow, to build indexes)
#   docker run --rm -v "$PWD/photos:/photos" -v imgsim-index:/data imgsim-index imgsim index /photos
#   docker run --rm -p 8080:8080 -v "$PWD/photos:/photos" -v imgsim-index:/data imgsim
# Mount the photos at the same path for indexing and serving: the index stores where they are.
# BASE: any Debian-based image with Python 3.11 and its venv module (python:3.11-slim by default;
# `make image BASE=...` takes another, e.g. one imported from a debootstrap root file system).
# PIP_CERT: a CA bundle for pip, where a proxy re-signs TLS (mount it with podman build -v ...).
ARG BASE=python:3.11-slim
FROM ${BASE} AS serve
ARG PIP_CERT
WORKDIR /srv/imgsim
COPY deploy/requirements-serve.txt deploy/
# nginx stays; the compiler that annoy (a source package) needs is removed in the same layer
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx g++ python3-dev \
    && python3 -m venv /opt/imgsim \
    && /opt/imgsim/bin/pip install --no-cache-dir -r deploy/requirements-serve.txt \
    && apt-get purge -y -qq g++ python3-dev && apt-get autoremove -y -qq && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin imgsim \
    && mkdir -p /data && chown imgsim /data
ENV PATH=/opt/imgsim/bin:$PATH PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY imgsim imgsim
COPY templates templates
COPY static static
COPY deploy deploy
RUN pip install --no-cache-dir --no-deps . && rm -rf build
USER imgsim
ENV IMGSIM_INDEX_DIR=/data KERAS_HOME=/data/keras \
    IMGSIM_BIND=127.0.0.1:8000 IMGSIM_PROXY_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
CMD ["imgsim", "proxy", "--run-dir", "/tmp/imgsim-nginx"]

FROM serve AS index
USER root
RUN pip install --no-cache-dir tensorflow-cpu==2.21.0 keras==3.15.1
USER imgsim
CMD ["imgsim", "index", "--help"]
