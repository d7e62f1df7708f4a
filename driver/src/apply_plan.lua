-- Applies one authsession-core plan atomically. Generic: no domain rules,
-- only the plan vocabulary (authsession_core::plan), encoded by
-- driver/src/redis_store.rs.
--
-- KEYS: every key the plan names. ARGV[1]: the number of preconditions,
-- then the preconditions, then the writes; each item is an opcode, a
-- 1-based index into KEYS, and its operands:
--   A k            Absent:           EXISTS KEYS[k] == 0
--   V k bytes      ValueEquals:      GET KEYS[k] == bytes
--   R k max n m*n  IndexRangeEquals: the members of KEYS[k] scored <= max
--                  ('+inf': no bound) are exactly the n members m
--   S k bytes      Set:              SET KEYS[k] bytes
--   Z k score m    IndexAdd:         ZADD KEYS[k] score m
--   X k m          IndexRemove:      ZREM KEYS[k] m
-- Returns 0 when every write was made, i when precondition i failed, or
-- -k when KEYS[k] is not a sorted set but a write needs one; in both
-- failure cases nothing was written.
local pos = 2
local n_pre = tonumber(ARGV[1])
for i = 1, n_pre do
  local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
  pos = pos + 2
  local holds
  if op == 'A' then
    holds = redis.call('EXISTS', key) == 0
  elseif op == 'V' then
    holds = redis.call('GET', key) == ARGV[pos]
    pos = pos + 1
  elseif op == 'R' then
    local max, n = ARGV[pos], tonumber(ARGV[pos + 1])
    pos = pos + 2
    local bound = nil
    if max ~= '+inf' then bound = tonumber(max) end
    holds = redis.call('ZCOUNT', key, '-inf', max) == n
    for j = 0, n - 1 do
      if holds then
        local score = redis.call('ZSCORE', key, ARGV[pos + j])
        holds = score and (bound == nil or tonumber(score) <= bound)
      end
    end
    pos = pos + n
  else
    return redis.error_reply('apply_plan: unknown precondition ' .. tostring(op))
  end
  if not holds then return i end
end

-- Sorted-set writes on a key of another type would fail half-way through
-- the writes; refuse before writing anything.
local first_write, checked = pos, {}
while pos <= #ARGV do
  local op, k = ARGV[pos], tonumber(ARGV[pos + 1])
  if op == 'Z' or op == 'X' then
    if not checked[k] then
      local t = redis.call('TYPE', KEYS[k])['ok']
      if t ~= 'zset' and t ~= 'none' then return -k end
      checked[k] = true
    end
  end
  if op == 'S' or op == 'X' then
    pos = pos + 3
  elseif op == 'Z' then
    pos = pos + 4
  else
    return redis.error_reply('apply_plan: unknown write ' .. tostring(op))
  end
end

pos = first_write
while pos <= #ARGV do
  local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
  if op == 'S' then
    redis.call('SET', key, ARGV[pos + 2])
    pos = pos + 3
  elseif op == 'Z' then
    redis.call('ZADD', key, ARGV[pos + 2], ARGV[pos + 3])
    pos = pos + 4
  else
    redis.call('ZREM', key, ARGV[pos + 2])
    pos = pos + 3
  end
end
return 0
