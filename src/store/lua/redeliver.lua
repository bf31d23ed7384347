-- redeliver: the code of a late fallback joins the pending verification whose newest code's
-- message the provider reported failed. The send window and the attempt count are untouched.
-- A number blocked after its send gets no new code.
-- KEYS: 1 verification (hash), 2 blocked (string)
-- ARGV: 1 now_ms, 2 verification id, 3 failed seq, 4 digest_hex, 5 channel, 6 max live codes,
--       7 the new code's route (`rt<seq>`)
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'stale'}
end
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
local seq = add_code(KEYS[1], ARGV[4], tonumber(ARGV[6]))
redis.call('HSET', KEYS[1], 'ch', ARGV[5], 'rt' .. seq, ARGV[7])
return {'added', tostring(seq), tostring(exp)}
