-- idempotency_claim: take an idempotency key, or report what holds it.
-- KEYS: 1 the key's record (hash: f fingerprint, r answer)
-- ARGV: 1 fingerprint, 2 lease_ms
local cur = redis.call('HMGET', KEYS[1], 'f', 'r')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'f', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'claimed'}
end
if cur[1] ~= ARGV[1] then
  return {'mismatch'}
end
if cur[2] then
  return {'done', cur[2]}
end
return {'pending'}
