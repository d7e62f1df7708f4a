-- Applies one authsession-core plan atomically. Generic: no domain rules,
-- only the plan vocabulary (authsession_core::plan), encoded by
-- driver/src/backend/script.rs. It mirrors MemoryKv::apply, nothing more.
--
-- KEYS: every key the plan names. ARGV[1]: the number of preconditions,
-- then the preconditions, then the writes; each item is an opcode, a
-- 1-based index into KEYS, and its operands:
--   A k            Absent:           TYPE KEYS[k] == none (from the type table)
--   V k bytes      ValueEquals:      GET KEYS[k] == bytes
--   O k bytes      AbsentOrEquals:   GET KEYS[k] is nil or == bytes
--   R k max n m*n  IndexRangeEquals: the members of KEYS[k] scored <= max
--                  ('+inf': no bound) are exactly the n distinct members m
--   C k n m*n      IndexContains:    every member m is in KEYS[k]
--   N k max c      IndexCountAtMost: ZCOUNT KEYS[k] -inf max <= c
--   S k bytes      Set:              SET KEYS[k] bytes (sent as MSET)
--   D k            Delete:           DEL KEYS[k]
--   Z k score m    IndexAdd:         ZADD KEYS[k] score m
--   X k m          IndexRemove:      ZREM KEYS[k] m
-- T k t          (first, once per checked key) the type KEYS[k] must have
--                when it exists: 's' string, 'z' sorted set (the plan's own
--                rule, authsession_core::plan::KeyTable, sent by the driver;
--                a key the plan only sets or deletes is not checked)
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
    local found = redis.call('ZRANGEBYSCORE', key, '-inf', max)
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

-- Writes to different keys commute, so only each key's own order matters:
-- consecutive ZADDs (or ZREMs) to one key are sent as one call, flushed
-- when that key sees another kind of write, and at the end. (Revoke all
-- interleaves a record SET, an active-index ZREM and a revoked-index ZADD
-- per session: three calls per batch instead of three per session.)
local strings, string_order = {}, {}   -- key -> value, or false: DEL
local pending = {}   -- key -> { op = 'Z'|'X', args = {...} }
local order = {}     -- keys with pending writes, first use first
local function flush(key)
  local p = pending[key]
  if not p then return end
  -- unpack() is bounded by the Lua stack: send in slices.
  local args, step = p.args, (p.op == 'Z') and 1000 or 500
  for j = 1, #args, step do
    local last = math.min(j + step - 1, #args)
    if p.op == 'Z' then
      redis.call('ZADD', key, unpack(args, j, last))
    else
      redis.call('ZREM', key, unpack(args, j, last))
    end
  end
  pending[key] = nil
end
local function queue(key, op, a, b)
  local p = pending[key]
  if p and p.op ~= op then
    flush(key)
    p = nil
  end
  if not p then
    p = { op = op, args = {} }
    pending[key] = p
    order[#order + 1] = key
  end
  local args = p.args
  args[#args + 1] = a
  if b then args[#args + 1] = b end
end

while pos <= #ARGV do
  local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]
  if op == 'X' then
    queue(key, 'X', ARGV[pos + 2])
    pos = pos + 3
  elseif op == 'Z' then
    queue(key, 'Z', ARGV[pos + 2], ARGV[pos + 3])
    pos = pos + 4
  elseif op == 'S' then
    -- A key holds strings or sorted sets, never both (the type table
    -- above): string writes only race with themselves, last one wins.
    if strings[key] == nil then string_order[#string_order + 1] = key end
    strings[key] = ARGV[pos + 2]
    pos = pos + 3
  elseif op == 'D' then
    if strings[key] == nil then string_order[#string_order + 1] = key end
    strings[key] = false
    pos = pos + 2
  else
    return redis.error_reply('apply_plan: unknown write ' .. tostring(op))
  end
end
for _, key in ipairs(order) do flush(key) end
-- All SETs as MSETs and DELs as one DEL per slice (one call each instead of
-- one per record).
local mset, del = {}, {}
local function flush_strings()
  if #mset > 0 then redis.call('MSET', unpack(mset)); mset = {} end
  if #del > 0 then redis.call('DEL', unpack(del)); del = {} end
end
for _, key in ipairs(string_order) do
  local value = strings[key]
  if value then
    mset[#mset + 1] = key
    mset[#mset + 1] = value
  else
    del[#del + 1] = key
  end
  if #mset >= 1000 or #del >= 500 then flush_strings() end
end
flush_strings()
return 0
