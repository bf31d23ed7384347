-- record_update: append a lifecycle entry and apply a status, a check, a channel.
-- KEYS: 1 record (hash), 2 lifecycle (list)
-- ARGV: 1 entry (JSON), 2 new status ('' = unchanged), 3 counts as a check (0|1),
--       4 channel ('' = unchanged), 5 now_ms, 6 max entries, 7 the Approved status
-- Returns nil when the record does not exist, else {E.164, vendor_data, metadata}.
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  return false
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'st', ARGV[2])
  if ARGV[2] == ARGV[7] then
    redis.call('HSET', KEYS[1], 'va', ARGV[5])
  end
end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], 'a', 1)
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'ch', ARGV[4])
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
redis.call('PEXPIRE', KEYS[2], ttl)
local h = redis.call('HMGET', KEYS[1], 'n', 'vd', 'md')
return {h[1] or '', h[2] or '', h[3] or ''}
