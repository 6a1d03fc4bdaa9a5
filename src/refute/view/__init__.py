"""`refute view`: a local web app to read runs and transcripts, compare runs, and label replies
for a run's own calibration. Server-rendered (Starlette, Jinja2 with autoescaping); needs
``pip install 'refute[view]'``."""

from refute.view._app import ViewConfig, create_app
from refute.view._server import free_port, is_loopback, serve, serving

__all__ = ["ViewConfig", "create_app", "free_port", "is_loopback", "serve", "serving"]
