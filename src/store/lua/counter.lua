-- counter: add to one windowed outcome counter and return its window sums and block state.
-- The hash holds `<field>:<bucket>` counts, `bu` (blocked until, ms) and `bn` (times blocked).
-- An approval lifts the block (conversions release a blocked key); `bn` stays, so the next
-- block lasts twice as long.
-- KEYS: 1 counter (hash)
-- ARGV: 1 now_ms, 2 bucket_ms, 3 buckets, 4 ttl_ms, then pairs of (field code, increment)
local now = tonumber(ARGV[1])
local bucket_ms = tonumber(ARGV[2])
local cur = math.floor(now / bucket_ms)
local oldest = cur - tonumber(ARGV[3]) + 1
for i = 5, #ARGV, 2 do
  local by = tonumber(ARGV[i + 1])
  if by ~= 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i] .. ':' .. cur, by)
    if ARGV[i] == 'a' and by > 0 then
      redis.call('HDEL', KEYS[1], 'bu')
    end
  end
end
local sums = {}
local all = redis.call('HGETALL', KEYS[1])
local bu, bn = 0, 0
for i = 1, #all, 2 do
  local name = all[i]
  if name == 'bu' then
    bu = tonumber(all[i + 1])
  elseif name == 'bn' then
    bn = tonumber(all[i + 1])
  else
    local sep = string.find(name, ':', 1, true)
    local bucket = tonumber(string.sub(name, sep + 1))
    if bucket < oldest then
      redis.call('HDEL', KEYS[1], name)
    else
      local f = string.sub(name, 1, sep - 1)
      sums[f] = (sums[f] or 0) + tonumber(all[i + 1])
    end
  end
end
local ttl = tonumber(ARGV[4])
if bu > now and bu - now > ttl then
  ttl = bu - now
end
if #all > 0 or #ARGV > 4 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local out = {tostring(bu), tostring(bn)}
for f, n in pairs(sums) do
  out[#out + 1] = f
  out[#out + 1] = tostring(n)
end
return out
