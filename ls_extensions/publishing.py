"""The one way our apps hand a message to Celery: never raising, never keeping a request waiting.

A broker that is down must not fail the request that asked for background work, and must not hold
it for kombu's minutes of connection retries: :func:`publish` makes a bounded connection attempt and
reports False instead of raising. What was to be published is always recorded in the database first
(a queued job, a pending trigger, a conversion row), so each app's sweep publishes it again later.
:func:`in_background` moves even that bounded attempt off the request thread (one publisher thread per
process); ``LS_EXT_PUBLISH_IN_BACKGROUND = False`` (the in-process tests) publishes in the caller.
:func:`publish_named` sends a task by its Celery name, for modules that must not import their tasks module.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ls_extensions import conf

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
THREAD_NAME = 'ls-ext-publish'


def publish(task, *args, countdown=None, attempts: int = 1) -> bool:
    """Send ``task(*args)`` (a Celery task object) to the broker; True if it took the message.

    ``attempts`` bounds the connection retries (``broker_connection_timeout`` each). The task is a
    task object, not a name, so a wrong name fails where it is looked up instead of reading as a
    broker that is down.
    """
    return _send(
        task.name,
        args,
        attempts,
        lambda connection: task.apply_async(args, countdown=countdown, retry=False, connection=connection),
    )


def publish_named(name: str, *args, countdown=None, attempts: int = 1) -> bool:
    """Send the Celery task named ``name`` (``app.send_task``) with ``args``; True if the broker took it.

    For callers that must not import their tasks module (it imports them): the caller checks the name
    against its own table of task names first, so a wrong name raises there instead of reading as a
    broker that is down. Like :func:`publish`, never raises for the broker. Where the task is registered in
    this process (a worker, or tests that imported the tasks), its ``apply_async`` sends it instead, the same
    message, so that Celery's eager mode runs it in place.
    """
    from ls_extensions.celery import app

    task = app.tasks.get(name)
    if task is not None:
        return publish(task, *args, countdown=countdown, attempts=attempts)
    return _send(
        name,
        args,
        attempts,
        lambda connection: app.send_task(name, args, countdown=countdown, retry=False, connection=connection),
    )


def _send(name, args, attempts, send) -> bool:
    from ls_extensions.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=attempts)
            send(connection)
        return True
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds of connection errors
        logger.warning('could not publish %s%r (broker unavailable?), its sweep retries: %s', name, args, exc)
        return False


def _publisher() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        return _executor


def in_background(fn, *args, **kwargs) -> Future | None:
    """Run the publishing call ``fn(*args, **kwargs)`` on the publisher thread; returns at once.

    A process that dies before the thread ran loses only the message, never the database record
    that the sweep publishes again.
    """
    if not conf.PUBLISH_IN_BACKGROUND.get():
        fn(*args, **kwargs)
        return None
    return _publisher().submit(_logged, fn, *args, **kwargs)


def _logged(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:  # a thread's exception would otherwise vanish with its future
        logger.exception('background publish %s failed', getattr(fn, '__qualname__', fn))
        raise


def wait_idle(timeout: float = 30.0) -> None:
    """Block until everything submitted so far has run (tests; a graceful stop)."""
    _publisher().submit(lambda: None).result(timeout=timeout)
