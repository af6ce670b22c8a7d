"""Production entry point for gunicorn: ``yurthub.wsgi:application``.

``gunicorn --config /etc/yurthub/gunicorn.conf.py yurthub.wsgi:application`` imports it in
the worker (``preload_app`` is off): it builds the hub from ``$YURTHUB_CONFIG`` (default
``/etc/yurthub/yurthub.conf``) but starts no thread; the ``post_worker_init`` hook of the
gunicorn config does.
"""

from __future__ import annotations

from yurthub import service

application = service.build_hub(service.load_config())
