"""A limit on password guessing: failed sign-ins counted in Redis, per address and name."""

from __future__ import annotations

from flask import request

from myapp.connections import get_redis
from myapp.keys import login_keys

#: Failed sign-ins allowed in a window. Per (name, client address): guessing one
#: password from one place; per address: trying many names. Both block only that
#: address, so nobody can lock a user out from elsewhere. Per name, from anywhere: a
#: higher bound on guessing one account from many addresses; past it, only
#: addresses with no failure on record still get their password checked.
LOGIN_ATTEMPTS_PER_NAME = 5
LOGIN_ATTEMPTS_PER_ADDRESS = 30
LOGIN_ATTEMPTS_PER_NAME_ANYWHERE = 100
LOGIN_WINDOW_SECONDS = 300

#: Check the limits and count the attempt in one step, so a burst of concurrent
#: guesses cannot all pass the check before any of them is counted.
#: KEYS: (name, address), address, name. ARGV: the three limits, the window (s).
_RESERVE = """
local pair = tonumber(redis.call('GET', KEYS[1]) or 0)
local addr = tonumber(redis.call('GET', KEYS[2]) or 0)
local name = tonumber(redis.call('GET', KEYS[3]) or 0)
if pair >= tonumber(ARGV[1]) or addr >= tonumber(ARGV[2])
        or (name >= tonumber(ARGV[3]) and addr > 0) then
    return 0
end
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then
        redis.call('EXPIRE', key, ARGV[4])
    end
end
return 1
"""
_REFUND = """
redis.call('DEL', KEYS[1])
for i = 2, 3 do
    if tonumber(redis.call('GET', KEYS[i]) or 0) > 0 then
        redis.call('DECR', KEYS[i])
    end
end
"""


def _login_keys(name: str) -> list[str]:
    return login_keys(str(request.remote_addr), name)


def login_reserve(name: str) -> bool:
    """Count a sign-in attempt before its password is checked; ``False`` when the
    limits are spent for this name from this address, and nothing is counted."""
    limits = (LOGIN_ATTEMPTS_PER_NAME, LOGIN_ATTEMPTS_PER_ADDRESS, LOGIN_ATTEMPTS_PER_NAME_ANYWHERE)
    keys = _login_keys(name)
    return bool(get_redis().eval(_RESERVE, len(keys), *keys, *limits, LOGIN_WINDOW_SECONDS))


def login_succeeded(name: str) -> None:
    """Give back the attempt :func:`login_reserve` counted: only failures count."""
    keys = _login_keys(name)
    get_redis().eval(_REFUND, len(keys), *keys)
