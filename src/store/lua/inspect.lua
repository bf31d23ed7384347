-- inspect: blocklist flag, verified-for, and the live verification, in one read.
-- KEYS: 1 verification, 2 blocked, 3 verified-for; ARGV: 1 now_ms
local v = redis.call('HMGET', KEYS[1], 'id', 'st', 'ch', 'at', 'c', 'e', 'va', 'r', 'vd')
if v[6] and tonumber(v[6]) <= tonumber(ARGV[1]) then
  v = {}
end
return {tostring(redis.call('EXISTS', KEYS[2])), redis.call('GET', KEYS[3]) or '', v[1] or '',
  v[2] or '', v[3] or '', v[4] or '0', v[5] or '0', v[6] or '0', v[7] or '', v[8] or '',
  v[9] or ''}
