-- idempotency_end: store the answer of a claimed key (ARGV[1] non-empty), or free the claim
-- of a failed request (ARGV[1] empty; a stored answer is never removed).
-- KEYS: 1 the key's record; ARGV: 1 answer, 2 ttl_ms
if ARGV[1] == '' then
  if redis.call('HEXISTS', KEYS[1], 'r') == 0 then
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'r', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
