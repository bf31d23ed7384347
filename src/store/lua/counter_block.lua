-- counter_block: block a counter key until a time and count the block (its index entry for
-- listing is written apart: the index lives on another slot).
-- KEYS: 1 counter (hash)
-- ARGV: 1 until_ms, 2 ttl_ms
redis.call('HSET', KEYS[1], 'bu', ARGV[1])
local n = redis.call('HINCRBY', KEYS[1], 'bn', 1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
