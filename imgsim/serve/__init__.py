"""The web service: one Service per worker, the Flask app and its blueprints, metrics, gunicorn's
settings and the nginx proxy in front."""
