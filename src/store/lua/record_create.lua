-- record_create: open a verification record and its lifecycle with the first entry.
-- KEYS: 1 record (hash), 2 lifecycle (list)
-- ARGV: 1 E.164, 2 vendor_data ('' none, else 'v' .. value), 3 metadata (same encoding),
--       4 now_ms, 5 ttl_ms, 6 channel, 7 first entry (JSON), 8 initial status
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'vd', ARGV[2], 'md', ARGV[3], 'c', ARGV[4],
  'st', ARGV[8], 'ch', ARGV[6], 'a', 0)
redis.call('RPUSH', KEYS[2], ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
