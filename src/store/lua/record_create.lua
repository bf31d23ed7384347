-- record_create: open a verification record before its first code is sent; the lifecycle
-- starts empty (the send's outcome is appended by record_update).
-- KEYS: 1 record (hash), 2 lifecycle (list)
-- ARGV: 1 E.164, 2 vendor_data ('' none, else 'v' .. value), 3 metadata (same encoding),
--       4 now_ms, 5 ttl_ms, 6 initial status
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'vd', ARGV[2], 'md', ARGV[3], 'c', ARGV[4],
  'st', ARGV[6], 'ch', '', 'a', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
