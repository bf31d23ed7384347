-- delete_number: remove a number's limit state and indexes, answering what they named.
-- KEYS: 1 verification, 2 superseded, 3 sends, 4 blocked, 5 verified-for, 6 ids, 7 idem keys,
--       8 ended verifications not yet announced
-- Returns {live state (0|1), blocked (0|1), number of ids, ids..., idempotency keys...}
local ids = redis.call('ZRANGE', KEYS[6], 0, -1)
local iks = redis.call('SMEMBERS', KEYS[7])
local live = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
local blocked = redis.call('EXISTS', KEYS[4])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
local out = {live > 0 and '1' or '0', tostring(blocked), tostring(#ids)}
for _, id in ipairs(ids) do
  out[#out + 1] = id
end
for _, k in ipairs(iks) do
  out[#out + 1] = k
end
return out
