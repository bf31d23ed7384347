-- end_verification: the expiry sweep's decision for one verification whose deadline came.
-- Exactly one caller ever gets 'ended' for a verification: the pending state turns into 'x'
-- (or its note in `ended` is taken) in the same step.
-- KEYS: 1 verification (hash), 2 ended verifications not yet announced (hash)
-- ARGV: 1 now_ms, 2 verification id
-- Returns {'ended', attempts, channel, expires_at} | {'later', expires_at} | {'gone'}
local now = tonumber(ARGV[1])
local noted = redis.call('HGET', KEYS[2], ARGV[2])
if noted then
  redis.call('HDEL', KEYS[2], ARGV[2])
  local at, ch, e = string.match(noted, '^([^\t]*)\t([^\t]*)\t([^\t]*)$')
  return {'ended', at or '0', ch or '', e or '0'}
end
local f = redis.call('HMGET', KEYS[1], 'id', 'st', 'at', 'ch', 'e')
if f[1] ~= ARGV[2] then
  return {'gone'}
end
local e = tonumber(f[5] or '0')
if e > now then
  return {'later', tostring(e)}
end
if f[2] ~= 'p' then
  -- Approved or declined (or announced already): nothing to announce. A concluded
  -- verification would have expired at its end; it goes now.
  if f[2] ~= 'x' then
    redis.call('DEL', KEYS[1])
  end
  return {'gone'}
end
redis.call('HSET', KEYS[1], 'st', 'x')
return {'ended', f[3] or '0', f[4] or '', tostring(e)}
