-- redeliver: the code of a late fallback joins the pending verification whose newest code's
-- message the provider reported failed. The send window and the attempt count are untouched.
-- KEYS: 1 verification (hash)
-- ARGV: 1 now_ms, 2 verification id, 3 failed seq, 4 digest_hex, 5 channel
local now = tonumber(ARGV[1])
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'st') ~= 'p' then
  return {'stale'}
end
local exp = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
if exp <= now then
  return {'stale'}
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n ~= tonumber(ARGV[3]) + 1 then
  return {'stale'}
end
redis.call('HSET', KEYS[1], 'd' .. n, ARGV[4], 'n', n + 1, 'ch', ARGV[5])
return {'added', tostring(n), tostring(exp)}
