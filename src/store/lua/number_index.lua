-- number_index: remember a verification id (ARGV[1] = 'id') or an idempotency key
-- (ARGV[1] = 'ik') of a number, for lookups by number and deletion.
-- KEYS: 1 ids (zset), 2 idempotency keys (set); ARGV: 2 member, 3 now_ms, 4 ttl_ms
if ARGV[1] == 'id' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('SADD', KEYS[2], ARGV[2])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
end
return 1
