-- Shared by the scripts that add a code (prepended to them when the store loads them).
-- add_code: records digest as the next code of verification `v` (fields d<seq>, n = next seq)
-- and drops the oldest live codes beyond max_live, so a blind guess never faces more than
-- max_live codes however many sends the verification saw. Field o = first slot that may hold a
-- live code. Returns the new code's seq.
local function add_code(v, digest, max_live)
  local seq = redis.call('HINCRBY', v, 'n', 1) - 1
  redis.call('HSET', v, 'd' .. seq, digest)
  local o = tonumber(redis.call('HGET', v, 'o') or '0')
  local live = {}
  for i = o, seq do
    if redis.call('HEXISTS', v, 'd' .. i) == 1 then
      live[#live + 1] = i
    end
  end
  if max_live < 1 then max_live = 1 end
  local drop = #live - max_live
  if drop > 0 then
    for k = 1, drop do
      redis.call('HDEL', v, 'd' .. live[k])
    end
    redis.call('HSET', v, 'o', live[drop + 1])
  end
  return seq
end

