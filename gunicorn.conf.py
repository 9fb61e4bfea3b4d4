"""gunicorn settings for imgsim: gunicorn -c gunicorn.conf.py 'app:create_app()'

They live in imgsim/serve/gunicorn_conf.py (``imgsim serve`` reads them from there).
"""

from imgsim.serve.gunicorn_conf import *  # noqa: F403
