-- Applies one authsession-core plan atomically. Generic: no domain rules,
-- only the plan vocabulary (authsession_core::plan), encoded by
-- driver/src/backend/script.rs. It mirrors MemoryKv::apply, nothing more.
--
-- KEYS: every key the plan names. ARGV: the type table (the number of
-- checked keys, then per key `k t`: the type KEYS[k] must have when it
-- exists, 's' string or 'z' sorted set, or 'x' when the plan uses it both
-- as a string and as an index (refused whatever it holds: no key holds
-- both) — the plan's own rule, authsession_core::plan::KeyTable; a key
-- the plan only sets or deletes is not checked), the number of
-- preconditions, the preconditions, then the
-- writes. A precondition is an opcode, a 1-based index into KEYS and its
-- operands:
--   A k            Absent:           TYPE KEYS[k] == none (from the type table)
--   V k bytes      ValueEquals:      GET KEYS[k] == bytes
--   O k bytes      AbsentOrEquals:   GET KEYS[k] is nil or == bytes
--   R k max n m*n  IndexRangeEquals: the members of KEYS[k] scored <= max
--                  ('+inf': no bound) are exactly the n distinct members m
--   C k n m*n      IndexContains:    every member m is in KEYS[k]
--   N k max c      IndexCountAtMost: ZCOUNT KEYS[k] -inf max <= c
-- The writes come in groups, one call each (the driver groups them and
-- keeps each key's own order; writes to different keys commute):
--   Z k n (score m)*n  ZADD KEYS[k] score m ...   (a run of IndexAdds)
--   X k n m*n          ZREM KEYS[k] m ...         (a run of IndexRemoves)
--   M n (k bytes)*n    MSET KEYS[k] bytes ...     (the Sets, last one wins)
--   D n k*n            DEL KEYS[k] ...            (the Deletes)
-- Returns 0 when every write was made, i when precondition i failed, or
-- -k when KEYS[k] holds another type than the plan needs; in both failure
-- cases nothing was written.
local pos = 1
local n_types = tonumber(ARGV[pos])
pos = pos + 1
local types = {}   -- k -> TYPE reply, for the checked keys
for _ = 1, n_types do
  local k, want = tonumber(ARGV[pos]), ARGV[pos + 1]
  pos = pos + 2
  if want == 'x' then return -k end
  local t = redis.call('TYPE', KEYS[k])['ok']
  types[k] = t
  if t ~= 'none' then
    if (want == 's' and t ~= 'string') or (want == 'z' and t ~= 'zset') then
      return -k
    end
  end
end

local n_pre = tonumber(ARGV[pos])
pos = pos + 1
for i = 1, n_pre do
  local k = tonumber(ARGV[pos + 1])
  local op, key = ARGV[pos], KEYS[k]
  pos = pos + 2
  local holds
  if op == 'A' then
    -- Its key is in the type table (a key required absent is checked as
    -- a string), which already asked: absent is 'none'.
    holds = types[k] == 'none'
  elseif op == 'V' then
    holds = redis.call('GET', key) == ARGV[pos]
    pos = pos + 1
  elseif op == 'O' then
    local value = redis.call('GET', key)
    holds = value == false or value == ARGV[pos]
    pos = pos + 1
  elseif op == 'R' then
    local max, n = ARGV[pos], tonumber(ARGV[pos + 1])
    pos = pos + 2
    -- One member more than expected is enough to tell: O(n), not O(range).
    local found = redis.call('ZRANGEBYSCORE', key, '-inf', max, 'LIMIT', 0, n + 1)
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
  elseif op == 'C' then
    local n = tonumber(ARGV[pos])
    pos = pos + 1
    holds = true
    -- ZMSCORE in slices: unpack() is bounded by the Lua stack.
    local j = 0
    while holds and j < n do
      local slice = math.min(n - j, 500)
      local scores = redis.call('ZMSCORE', key, unpack(ARGV, pos + j, pos + j + slice - 1))
      for s = 1, slice do
        if not scores[s] then
          holds = false
          break
        end
      end
      j = j + slice
    end
    pos = pos + n
  elseif op == 'N' then
    local max, c = ARGV[pos], tonumber(ARGV[pos + 1])
    pos = pos + 2
    holds = redis.call('ZCOUNT', key, '-inf', max) <= c
  else
    return redis.error_reply('apply_plan: unknown precondition ' .. tostring(op))
  end
  if not holds then return i end
end

-- The writes, grouped by the driver (each key's own order kept; see
-- script.rs): one call per group, ZADD/ZREM straight from ARGV slices.
-- unpack() is bounded by the Lua stack: large groups go in slices.
local n_argv = #ARGV
while pos <= n_argv do
  local op = ARGV[pos]
  if op == 'Z' or op == 'X' then
    local key, n = KEYS[tonumber(ARGV[pos + 1])], tonumber(ARGV[pos + 2])
    pos = pos + 3
    local width = (op == 'Z') and 2 or 1
    local last = pos + n * width - 1
    local command = (op == 'Z') and 'ZADD' or 'ZREM'
    for j = pos, last, 1000 do
      redis.call(command, key, unpack(ARGV, j, math.min(j + 999, last)))
    end
    pos = last + 1
  elseif op == 'M' then
    local n = tonumber(ARGV[pos + 1])
    pos = pos + 2
    local args = {}
    for j = 0, n - 1 do
      args[#args + 1] = KEYS[tonumber(ARGV[pos + 2 * j])]
      args[#args + 1] = ARGV[pos + 2 * j + 1]
      if #args >= 1000 then redis.call('MSET', unpack(args)); args = {} end
    end
    if #args > 0 then redis.call('MSET', unpack(args)) end
    pos = pos + 2 * n
  elseif op == 'D' then
    local n = tonumber(ARGV[pos + 1])
    pos = pos + 2
    local args = {}
    for j = 0, n - 1 do
      args[#args + 1] = KEYS[tonumber(ARGV[pos + j])]
      if #args >= 500 then redis.call('DEL', unpack(args)); args = {} end
    end
    if #args > 0 then redis.call('DEL', unpack(args)) end
    pos = pos + n
  else
    return redis.error_reply('apply_plan: unknown write ' .. tostring(op))
  end
end
return 0
