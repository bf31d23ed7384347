-- claim_due: takes up to ARGV[3] entries of the deadline index due at ARGV[1] and leases them
-- until ARGV[2] (their score moves there), so concurrent sweepers never take the same entry; an
-- entry whose sweeper dies comes back when its lease ends.
-- KEYS: 1 deadline index (zset: member = verification id \t app \t E.164, score = its end)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[i])
end
return due
