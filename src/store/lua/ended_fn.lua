-- Shared by the scripts that may find a pending verification past its end (prepended to them
-- when the store loads them). A verification is kept ENDED_KEPT_MS past its end so that the
-- expiry sweep can announce it; a script that must replace it sooner notes it first.
-- note_ended: records the pending verification `v` in `ended` (a hash of the number:
-- id -> attempts \t channel \t expires_at) until the sweep takes it.
local ENDED_KEPT_MS = __ENDED_KEPT_MS__
local function note_ended(v, ended)
  local f = redis.call('HMGET', v, 'id', 'at', 'ch', 'e')
  if f[1] then
    redis.call('HSET', ended, f[1], (f[2] or '0') .. '\t' .. (f[3] or '') .. '\t' .. (f[4] or '0'))
    redis.call('PEXPIRE', ended, ENDED_KEPT_MS)
  end
end
