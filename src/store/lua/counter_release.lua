-- counter_release: an admin lifts a counter's block. The sends counted in its window go too, so
-- the key starts afresh (otherwise the next send would trip the same rule at once); approvals
-- and `bn` (times blocked) stay, so a key that trips again is blocked longer.
-- KEYS: 1 counter (hash)
-- Returns 1 when the counter was blocked.
local was = redis.call('HDEL', KEYS[1], 'bu')
local all = redis.call('HKEYS', KEYS[1])
for i = 1, #all do
  if string.sub(all[i], 1, 2) == 's:' then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return was
