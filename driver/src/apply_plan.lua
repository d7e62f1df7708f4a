-- Applies one authsession-core plan atomically. Generic: no domain rules,
-- only the plan vocabulary (authsession_core::plan), encoded by
-- driver/src/redis_store.rs.
--
-- KEYS: every key the plan names. ARGV[1]: the number of preconditions,
-- then the preconditions, then the writes; each item is an opcode, a
-- 1-based index into KEYS, and its operands:
--   A k            Absent:           TYPE KEYS[k] == none
--   V k bytes      ValueEquals:      GET KEYS[k] == bytes
--   R k max n m*n  IndexRangeEquals: the members of KEYS[k] scored <= max
--                  ('+inf': no bound) are exactly the n distinct members m
--                  (ZRANGEBYSCORE -inf max: same count, each one present)
--   S k bytes      Set:              SET KEYS[k] bytes
--   Z k score m    IndexAdd:         ZADD KEYS[k] score m
--   X k m          IndexRemove:      ZREM KEYS[k] m
-- Returns 0 when every write was made, i when precondition i failed, or
-- -k when KEYS[k] holds the wrong type for the precondition or write that
-- names it (a string for A/V, a sorted set for R/Z/X); in both failure
-- cases nothing was written.
local pos = 2
local n_pre = tonumber(ARGV[1])
for i = 1, n_pre do
  local op, k = ARGV[pos], tonumber(ARGV[pos + 1])
  local key = KEYS[k]
  pos = pos + 2
  local holds
  if op == 'A' then
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= 'string' then return -k end
    holds = t == 'none'
  elseif op == 'V' then
    local value = redis.pcall('GET', key)
    if type(value) == 'table' and value['err'] then return -k end
    holds = value == ARGV[pos]
    pos = pos + 1
  elseif op == 'R' then
    local max, n = ARGV[pos], tonumber(ARGV[pos + 1])
    pos = pos + 2
    local found = redis.pcall('ZRANGEBYSCORE', key, '-inf', max)
    if found['err'] then return -k end
    holds = #found == n
    if holds then
      local present = {}
      for _, member in ipairs(found) do present[member] = true end
      for j = 0, n - 1 do
        if not present[ARGV[pos + j]] then
          holds = false
          break
        end
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

-- Consecutive removals from one sorted set (revoke-all interleaves them
-- with record writes to other keys, which commute) go out as one ZREM.
local rem_key, rem = nil, {}
local function flush_removals()
  if rem_key then
    redis.call('ZREM', rem_key, unpack(rem))
    rem_key, rem = nil, {}
  end
end

pos = first_write
while pos <= #ARGV do
  local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
  if op == 'X' then
    -- unpack() is bounded by the Lua stack: flush in slices.
    if rem_key ~= key or #rem >= 1000 then
      flush_removals()
      rem_key = key
    end
    rem[#rem + 1] = ARGV[pos + 2]
    pos = pos + 3
  else
    if key == rem_key then flush_removals() end
    if op == 'S' then
      redis.call('SET', key, ARGV[pos + 2])
      pos = pos + 3
    else
      redis.call('ZADD', key, ARGV[pos + 2], ARGV[pos + 3])
      pos = pos + 4
    end
  end
end
flush_removals()
return 0
