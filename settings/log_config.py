"""Each log line once: Label Studio's LOGGING gives ``django`` (and a few others) the root's own console
handler while letting them propagate to the root, so every request line and Django warning printed twice."""

import copy


def once(logging_config):
    """A copy of ``logging_config`` where no propagating logger repeats a handler of the root logger.

    The handler is dropped from the logger rather than propagation switched off, so records still reach
    the root (and whatever is attached there, e.g. pytest's log capture).
    """
    config = copy.deepcopy(logging_config)
    root_handlers = set(config.get('root', {}).get('handlers', ()))
    for logger in config.get('loggers', {}).values():
        if logger.get('propagate', True) and 'handlers' in logger:
            logger['handlers'] = [h for h in logger['handlers'] if h not in root_handlers]
    return config
