-- record_channel: the channel that delivered, when it is not the planned first one.
-- KEYS: 1 verification; ARGV: 1 verification id, 2 channel
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'ch', ARGV[2])
  return 1
end
return 0
