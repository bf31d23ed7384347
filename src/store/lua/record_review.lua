-- record_review: resolve an In Review record, or say why not. Atomic: one decision wins.
-- KEYS: 1 record (hash), 2 lifecycle (list)
-- ARGV: 1 new status, 2 entry (JSON), 3 now_ms, 4 max entries, 5 the In Review status,
--       6 the Approved status
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  return {'notfound'}
end
local st = redis.call('HGET', KEYS[1], 'st')
if st ~= ARGV[5] then
  return {'not_in_review', st or ''}
end
redis.call('HSET', KEYS[1], 'st', ARGV[1])
if ARGV[1] == ARGV[6] then
  redis.call('HSET', KEYS[1], 'va', ARGV[3])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ttl)
local h = redis.call('HMGET', KEYS[1], 'n', 'vd', 'md')
return {'resolved', h[1] or '', h[2] or '', h[3] or ''}
