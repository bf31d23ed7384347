-- number_index: remember an idempotency key of a number, for deletion. (Its verification ids
-- are indexed by reserve_send, with the verification.)
-- KEYS: 1 idempotency keys (set); ARGV: 1 member, 2 ttl_ms
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
