-- record_channel: what a delivered send tells the verification: the channel that delivered,
-- when it is not the planned first one, and, for providers that account conversions, which
-- provider message carried the code (so an approval can be confirmed to that provider).
-- KEYS: 1 verification
-- ARGV: 1 verification id, 2 channel ('' = unchanged), 3 code seq, 4 'provider\nmessage id' ('' = none),
--       5 the code's route when another route delivered it ('' = unchanged)
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'ch', ARGV[2])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'rt' .. ARGV[3], ARGV[5])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'cm' .. ARGV[3], ARGV[4])
end
return 1
