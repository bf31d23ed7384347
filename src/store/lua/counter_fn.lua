-- counter: add to windowed outcome counters and return each one's window sums and block state.
-- Every key named is one counter: a hash of `<field>:<bucket>` counts, `bu` (blocked until, ms)
-- and `bn` (times blocked). An approval lifts the block (conversions release a blocked key);
-- `bn` stays, so the next block lasts twice as long. On a single node every counter of a send
-- goes in one call; on a cluster each counter (its own slot) is a call of its own.
-- count_keys(first_key, first_arg): KEYS[first_key..] are the counters (hashes);
-- ARGV[first_arg] is now_ms, then for each key in order: bucket_ms, buckets, ttl_ms, n, and n
-- pairs of (field code, increment)
-- Returns, per key: {blocked_until, blocks, field, sum, field, sum, ...}
local function count_keys(first_key, first_arg)
local now = tonumber(ARGV[first_arg])
local replies = {}
local a = first_arg + 1
for k = first_key, #KEYS do
  local key = KEYS[k]
  local bucket_ms = tonumber(ARGV[a])
  local cur = math.floor(now / bucket_ms)
  local oldest = cur - tonumber(ARGV[a + 1]) + 1
  local ttl = tonumber(ARGV[a + 2])
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  for i = 1, n do
    local f, by = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    if by ~= 0 then
      redis.call('HINCRBY', key, f .. ':' .. cur, by)
      if f == 'a' and by > 0 then
        redis.call('HDEL', key, 'bu')
      end
    end
  end
  local sums = {}
  local all = redis.call('HGETALL', key)
  local bu, bn = 0, 0
  for i = 1, #all, 2 do
    local name = all[i]
    if name == 'bu' then
      bu = tonumber(all[i + 1])
    elseif name == 'bn' then
      bn = tonumber(all[i + 1])
    else
      local sep = string.find(name, ':', 1, true)
      if tonumber(string.sub(name, sep + 1)) < oldest then
        redis.call('HDEL', key, name)
      else
        local f = string.sub(name, 1, sep - 1)
        sums[f] = (sums[f] or 0) + tonumber(all[i + 1])
      end
    end
  end
  if bu > now and bu - now > ttl then
    ttl = bu - now
  end
  if #all > 0 or n > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
  local out = {tostring(bu), tostring(bn)}
  for f, s in pairs(sums) do
    out[#out + 1] = f
    out[#out + 1] = tostring(s)
  end
  replies[#replies + 1] = out
end
return replies
end
