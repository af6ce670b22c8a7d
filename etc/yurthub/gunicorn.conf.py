"""gunicorn settings of the yurthub service.

systemd runs ``python3 -m gunicorn --config /etc/yurthub/gunicorn.conf.py
yurthub.wsgi:application``; gunicorn executes this file in its master process before it
binds a port.  Every value comes from yurthub's own settings (``$YURTHUB_CONFIG``, by
default ``/etc/yurthub/yurthub.conf``), so change that file, not this one.

A bad setting, unreadable credentials or an unusable cache directory stops the start here
with one line on stderr and exit status 78 (EX_CONFIG), before gunicorn forks its worker;
in the journal, with priority err.  The unit does not restart it (RestartPreventExitStatus):
fix the setting, then ``systemctl restart yurthub``.  A port or the cache held by another
process exits 75 (EX_TEMPFAIL) instead, and systemd starts the hub again.
"""

import sys

from yurthub import service
from yurthub.errors import YurthubError

try:
    _cfg = service.load_config()
    service.configure_logging(_cfg)
    service.preflight(_cfg)
    # gthread, one worker, threads, graceful timeout, the worker hooks, stderr logging and
    # max_requests = 0: gunicorn reads them from this module's globals.  (With
    # secure_proxy_port, this binds the ports: one taken since preflight is one line too.)
    globals().update(service.gunicorn_settings(_cfg))
except YurthubError as _e:
    print(service.error_line(_e), file=sys.stderr)
    sys.exit(service.exit_status(_e))
