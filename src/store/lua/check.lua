-- check: count the attempt, compare the candidate digest in constant time with every live
-- code of the verification, and consume it. Exactly one caller can see 'approved'.
-- KEYS: 1 verification, 2 blocked, 3 verified-for
-- ARGV: 1 now_ms, 2 candidate digest hex ('' = cannot match), 3 max_attempts,
--       4 vendor_data ('' = the verification's), 5 refuse_duplicate (0|1), 6 verified_ttl_ms
local now = tonumber(ARGV[1])
local vf = redis.call('GET', KEYS[3])
local vendor = ARGV[4]
-- A check without vendor_data is judged with its verification's (its first send's).
if vendor == '' then
  vendor = redis.call('HGET', KEYS[1], 'vd') or ''
end
local dup = vf and vendor ~= '' and vf ~= vendor

local function view(verdict, left)
  local v = redis.call('HMGET', KEYS[1], 'id', 'st', 'ch', 'at', 'c', 'e', 'va', 'r', 'vd')
  return {verdict, tostring(left), vf or '', v[1] or '', v[2] or '', v[3] or '', v[4] or '0',
    v[5] or '0', v[6] or '0', v[7] or '', v[8] or '', v[9] or ''}
end

local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  return {'notfound', '0', vf or ''}
end
if tonumber(redis.call('HGET', KEYS[1], 'e')) <= now then
  -- Left for the expiry sweep, which announces how it ended (and the key's TTL removes it).
  return {'notfound', '0', vf or ''}
end
if st == 'a' then
  return view('notfound', 0)
end
if st == 'd' then
  return view('declined', 0)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[1], 'st', 'd', 'r', 'blocked')
  return view('blocked', 0)
end

-- The attempt is counted before the comparison, whatever its outcome.
redis.call('HINCRBY', KEYS[1], 'at', 1)
local matched = false
local matched_seq = -1
local candidate = ARGV[2]
if candidate ~= '' then
  local diff_all = 1
  local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  for i = tonumber(redis.call('HGET', KEYS[1], 'o') or '0'), n - 1 do
    local d = redis.call('HGET', KEYS[1], 'd' .. i)
    if d and #d == #candidate then
      -- No early exit: every byte of every live digest is compared.
      local diff = 0
      for j = 1, #d do
        diff = bit.bor(diff, bit.bxor(string.byte(d, j), string.byte(candidate, j)))
      end
      if diff == 0 then
        diff_all = 0
        matched_seq = i
      end
    end
  end
  matched = diff_all == 0
end

if matched and dup and ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'st', 'd', 'r', 'duplicate')
  return view('duplicate', 0)
end
if matched then
  redis.call('HSET', KEYS[1], 'st', 'a', 'va', now)
  if vendor ~= '' and not dup then
    if vf == vendor then
      redis.call('PEXPIRE', KEYS[3], ARGV[6])
    else
      redis.call('SET', KEYS[3], vendor, 'PX', ARGV[6])
    end
  end
  local approved = view('approved', 0)
  approved[#approved + 1] = redis.call('HGET', KEYS[1], 'cm' .. matched_seq) or ''
  approved[#approved + 1] = redis.call('HGET', KEYS[1], 'rt' .. matched_seq) or ''
  -- Whether a later code went out (and is still held) before this one was entered.
  local superseded = '0'
  for i = matched_seq + 1, tonumber(redis.call('HGET', KEYS[1], 'n') or '0') - 1 do
    if redis.call('HEXISTS', KEYS[1], 'd' .. i) == 1 then
      superseded = '1'
      break
    end
  end
  approved[#approved + 1] = superseded
  return approved
end
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local max_attempts = tonumber(ARGV[3])
if failures >= max_attempts then
  redis.call('HSET', KEYS[1], 'st', 'd', 'r', 'attempts')
  return view('exhausted', 0)
end
return view('wrong', max_attempts - failures)
