-- reserve_send: blocklist, duplicate, declined verification, rolling resend window and
-- cooldown, then open or join the pending verification and record the code's digest.
-- KEYS: 1 verification (hash), 2 superseded verification (hash), 3 sends (zset),
--       4 blocked (string), 5 verified-for (string), 6 ended verifications not yet announced
--       (hash, see ended_fn.lua), 7 the number's verification ids (zset: its records, newest
--       last), 8 (single node only) the deadline index (zset)
-- Returns on success: {'reserved', id, joined, seq, expires_at, resends_left, verified_for,
--   the previous code's route when joined}
-- ARGV: 1 now_ms, 2 digest_hex, 3 channel, 4 vendor_data ('' = none), 5 refuse_duplicate (0|1),
--       6 validity_ms, 7 max_resends, 8 window_ms, 9 cooldown_ms, 10 exempt (0|1), 11 new_id,
--       12 the code's route ('channel\tprovider\tsent_ms', kept as `rt<seq>`),
--       13 the new verification's deadline-index member ('' = the caller indexes it),
--       14 the records' ttl_ms (the number's verification ids are kept that long past the
--       verification's validity)
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'blocked'}
end
local vf = redis.call('GET', KEYS[5])
local vendor = ARGV[4]
if ARGV[5] == '1' and vf and vendor ~= '' and vf ~= vendor then
  return {'duplicate'}
end

local st = redis.call('HGET', KEYS[1], 'st')
local exp = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
if st and exp <= now then
  if st == 'p' then
    note_ended(KEYS[1], KEYS[6])
  end
  redis.call('DEL', KEYS[1])
  st = false
end
if st == 'd' then
  return {'declined', tostring(exp - now)}
end

local exempt = ARGV[10] == '1'
local max_resends = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local allowance = max_resends + 1
local count = 0
if not exempt then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  count = redis.call('ZCARD', KEYS[3])
  if count >= allowance then
    local oldest = redis.call('ZRANGE', KEYS[3], count - allowance, count - allowance, 'WITHSCORES')
    local wait = tonumber(oldest[2]) + window - now
    if wait < 1 then wait = 1 end
    return {'throttled', tostring(wait), '0'}
  end
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local cooldown = tonumber(ARGV[9])
  -- No cooldown, no check: a send stamped a few ms before the last one (another instance's
  -- clock) must not read as too soon.
  if cooldown > 0 and last[2] and now < tonumber(last[2]) + cooldown then
    return {'throttled', tostring(tonumber(last[2]) + cooldown - now), '1'}
  end
end

local id, joined, seq
if st == 'p' then
  id = redis.call('HGET', KEYS[1], 'id')
  seq = add_code(KEYS[1], ARGV[2], max_resends + 1)
  joined = '1'
else
  -- A concluded verification is kept aside until the new one is delivered or released.
  if st then
    redis.call('RENAME', KEYS[1], KEYS[2])
  else
    redis.call('DEL', KEYS[2])
  end
  id = ARGV[11]
  seq = 0
  exp = now + tonumber(ARGV[6])
  redis.call('HSET', KEYS[1], 'id', id, 'st', 'p', 'ch', ARGV[3], 'at', 0, 'f', 0,
    'c', now, 'e', exp, 'n', 1, 'd0', ARGV[2])
  if vendor ~= '' then
    redis.call('HSET', KEYS[1], 'vd', vendor)
  end
  -- Kept past its end so that the expiry sweep can still read how it ended.
  redis.call('PEXPIRE', KEYS[1], exp - now + ENDED_KEPT_MS)
  if ARGV[13] ~= '' then
    redis.call('ZADD', KEYS[8], exp, ARGV[13])
  end
  -- The number's index of its verifications, on this slot: written with the verification, so
  -- the send makes no call of its own for it (release_send takes a released one out again).
  -- Kept for the records' lifetime counted from now, plus the verification's validity: its
  -- record is opened by the next store call, a little later than this entry, and the margin
  -- keeps the index from expiring before it. Only ever lengthened (another workflow of the
  -- application may keep records longer).
  local ids_ttl = tonumber(ARGV[14]) + tonumber(ARGV[6])
  redis.call('ZADD', KEYS[7], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - ids_ttl)
  if redis.call('PTTL', KEYS[7]) < ids_ttl then
    redis.call('PEXPIRE', KEYS[7], ids_ttl)
  end
  joined = '0'
end

redis.call('HSET', KEYS[1], 'rt' .. seq, ARGV[12])
local left = max_resends
if not exempt then
  redis.call('ZADD', KEYS[3], now, id .. ':' .. seq)
  redis.call('PEXPIRE', KEYS[3], window)
  left = allowance - (count + 1)
end
local previous = ''
if joined == '1' then
  previous = redis.call('HGET', KEYS[1], 'rt' .. (seq - 1)) or ''
end
return {'reserved', id, joined, tostring(seq), tostring(exp), tostring(left), vf or '', previous}
