"""Django's Redis cache that degrades to a miss while Redis is unreachable.

Label Studio caches state (its FSM) in the default cache; with Django's plain ``RedisCache`` a
Redis outage would fail every request that touches it. Here reads miss and writes are dropped
(logged), so the web keeps working on the database alone until Redis is back.
"""

import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def _warn(operation, exc):
    logger.warning('cache: Redis unreachable on %s (%s); continuing without it', operation, exc)


class TolerantRedisCache(RedisCache):
    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except ERRORS as exc:
            _warn('get', exc)
            return default

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except ERRORS as exc:
            _warn('get_many', exc)
            return {}

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except ERRORS as exc:
            _warn('has_key', exc)
            return False

    def add(self, key, value, timeout=None, version=None):
        try:
            return super().add(key, value, timeout, version)
        except ERRORS as exc:
            _warn('add', exc)
            return False

    def set(self, key, value, timeout=None, version=None):
        try:
            super().set(key, value, timeout, version)
        except ERRORS as exc:
            _warn('set', exc)

    def set_many(self, data, timeout=None, version=None):
        try:
            return super().set_many(data, timeout, version)
        except ERRORS as exc:
            _warn('set_many', exc)
            return list(data)

    def touch(self, key, timeout=None, version=None):
        try:
            return super().touch(key, timeout, version)
        except ERRORS as exc:
            _warn('touch', exc)
            return False

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except ERRORS as exc:
            _warn('delete', exc)
            return False

    def delete_many(self, keys, version=None):
        try:
            super().delete_many(keys, version)
        except ERRORS as exc:
            _warn('delete_many', exc)
