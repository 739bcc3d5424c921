"""gunicorn settings for the web process; each can be overridden from the environment.

The worker class is gevent: a web process holds each open event stream (SSE) as a greenlet
of about 22 KB, and one Redis subscription per process serves them all, so one process holds
hundreds of streams while it keeps answering the API (bench/sse_streams.py: 500 streams,
gevent vs gthread). gthread stays available (WEB_WORKER_CLASS=gthread), but every open
stream then holds one of its WEB_THREADS threads.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
threads = int(os.environ.get("WEB_THREADS", "8"))
# gevent: concurrent connections per process, open event streams included.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
# Heroku and most platforms allow 30 s between SIGTERM and SIGKILL.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "25"))
timeout = 30
keepalive = 5
# The longest request line gunicorn reads (its maximum; the default is 4094). Every schema-valid
# query of the API fits well within it; a longer line gets gunicorn's own 414, before the app.
limit_request_line = 8190
# The control socket would be written under $HOME, which a container may not have.
control_socket_disable = True
accesslog = os.environ.get("WEB_ACCESS_LOG") or None


def post_worker_init(worker):
    """On SIGTERM, end open event streams at once instead of waiting out graceful_timeout.

    EventSource clients reconnect with their Last-Event-ID to a live process and lose
    nothing; other requests still get the graceful timeout to finish.
    """
    import signal

    from webapp.web.sse.hub import end_all_streams

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        end_all_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
