-- release_send: undo a reservation whose send no provider can have accepted.
-- KEYS: 1 verification, 2 superseded verification, 3 sends, 4 the number's verification ids
-- ARGV: 1 verification id, 2 seq
redis.call('ZREM', KEYS[3], ARGV[1] .. ':' .. ARGV[2])
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 'd' .. ARGV[2])
if redis.call('HGET', KEYS[1], 'st') ~= 'p' then
  return 1
end
-- A verification a check was made against keeps its failure count: never deleted here.
if tonumber(redis.call('HGET', KEYS[1], 'at') or '0') > 0 then
  return 1
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
for i = tonumber(redis.call('HGET', KEYS[1], 'o') or '0'), n - 1 do
  if redis.call('HEXISTS', KEYS[1], 'd' .. i) == 1 then
    return 1
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[1])
else
  redis.call('DEL', KEYS[1])
end
-- Undone. When this was its only code ever, it never reached anyone and has no record: out of
-- the number's index too (one that had resends keeps its entry: its first send may have one).
if n <= 1 then
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
