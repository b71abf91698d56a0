"""Wakes the uWSGI master as soon as a worker exits (a benchmark variant: bench/README.md).

uWSGI 2.0's master leaves SIGCHLD at its default (no handler, so no EINTR) and notices dead
workers only when its event wait times out, once a second. A graceful reload therefore waits
about 1 s with no worker serving (requests wait in the listen queue). A no-op SIGCHLD handler
in the master makes that wait return as soon as a worker is gone; nothing else changes.
Imported in the master by `pyimport` (before the app is loaded and the workers are forked).
"""

import signal

try:
    import uwsgi
except ImportError:  # not running under uWSGI: do nothing
    uwsgi = None

if uwsgi is not None and uwsgi.worker_id() == 0:
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # Other system calls of the master restart as before; epoll_wait never restarts (signal(7)).
    signal.siginterrupt(signal.SIGCHLD, False)
    # The workers, forked from the master, go back to the default disposition.
    uwsgi.post_fork_hook = lambda: signal.signal(signal.SIGCHLD, signal.SIG_DFL)
