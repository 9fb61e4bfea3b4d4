# imgsim search service. Untested here (no Docker engine on our build machines); see README.
#   docker build -t imgsim .
#   docker run --rm -v "$PWD/photos:/photos:ro" -v imgsim-index:/data imgsim imgsim index /photos
#   docker run --rm -p 8000:8000 -v "$PWD/photos:/photos:ro" -v imgsim-index:/data imgsim
# Mount the photos at the same path for indexing and serving: the index stores where they are.
# To add images through POST /images (IMGSIM_ADMIN_TOKEN), mount the photos writable (no :ro).
FROM python:3.11-slim

WORKDIR /srv/imgsim
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md *.py ./
COPY imgsim imgsim
COPY templates templates
COPY static static
COPY deploy deploy
# the `imgsim` command; the dependencies are already there (requirements.txt pins the same)
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

ENV IMGSIM_INDEX_DIR=/data \
    IMGSIM_BIND=0.0.0.0:8000 \
    KERAS_HOME=/data/keras \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
