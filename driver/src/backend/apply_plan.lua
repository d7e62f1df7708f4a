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
-- The writes come in groups, one call each:
--   Z k n (score m)*n  ZADD KEYS[k] score m ...   (a run of IndexAdds)
--   X k n m*n          ZREM KEYS[k] m ...         (a run of IndexRemoves)
--   M n (k bytes)*n    MSET KEYS[k] bytes ...     (Sets, last one wins)
--   D n k*n            DEL KEYS[k] ...            (Deletes)
-- The driver sends them in the plan's fail-safe order
-- (authsession_core::plan::Plan::write_phases), and the script makes them
-- in the order sent: index entries a new record needs, then the records,
-- then removals and moves into another index, then deletions. Read from
-- the plan's vocabulary alone, that order means a prefix — what is left
-- when a server refuses a write part-way — never holds an active record
-- outside its active index (at worst an index entry whose record was
-- refused: reported, repaired, never trusted).
--
-- Writes fail safe or not at all: where the server has
-- redis.acl_check_cmd (Redis 7.0+, Valkey), every write is checked
-- against the caller's ACL before the first one, and a refusal is the
-- error reply `NOPERM apply_plan: ...` with nothing written. Redis 6.2
-- lacks it: there a refused write leaves the prefix before it (in the
-- order above). A server at maxmemory refuses only a script's first
-- memory-growing write, never one after a write (Redis and Valkey stop a
-- script on OOM only while it has written nothing), and a read-only
-- replica refuses the first write: both leave nothing written.
--
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

local n_argv = #ARGV

-- Before the first write, every write is checked against the ACL of the
-- user running the script, where the server can tell (Redis 7.0+,
-- Valkey): Redis does not undo a script's earlier writes when a later
-- call is refused, so a refusal must come before any of them. One check
-- per index group (its key); record keys in slices, each key named only
-- when its slice is refused.
if redis.acl_check_cmd then
  local function refused(command, key)
    return redis.error_reply('NOPERM apply_plan: the ACL refuses ' .. command ..
      ' on ' .. key .. '; nothing was written')
  end
  -- command over the keys at ARGV[from], ARGV[from + step], ... (n of
  -- them), with an empty value after each when `valued`.
  local function check_keys(command, from, n, step, valued)
    local j = 0
    while j < n do
      local slice = math.min(n - j, 500)
      local args = {}
      for s = 0, slice - 1 do
        args[#args + 1] = KEYS[tonumber(ARGV[from + (j + s) * step])]
        if valued then args[#args + 1] = '' end
      end
      if not redis.acl_check_cmd(command, unpack(args)) then
        local width = valued and 2 or 1
        for s = 1, #args, width do
          local one
          if valued then
            one = redis.acl_check_cmd(command, args[s], '')
          else
            one = redis.acl_check_cmd(command, args[s])
          end
          if not one then return refused(command, args[s]) end
        end
        return refused(command, args[1])
      end
      j = j + slice
    end
  end
  local p = pos
  while p <= n_argv do
    local op = ARGV[p]
    if op == 'Z' or op == 'X' then
      local key, n = KEYS[tonumber(ARGV[p + 1])], tonumber(ARGV[p + 2])
      if op == 'Z' then
        if not redis.acl_check_cmd('ZADD', key, '0', 'm') then return refused('ZADD', key) end
        p = p + 3 + 2 * n
      else
        if not redis.acl_check_cmd('ZREM', key, 'm') then return refused('ZREM', key) end
        p = p + 3 + n
      end
    elseif op == 'M' or op == 'D' then
      local n = tonumber(ARGV[p + 1])
      local denied
      if op == 'M' then
        denied = check_keys('MSET', p + 2, n, 2, true)
        p = p + 2 + 2 * n
      else
        denied = check_keys('DEL', p + 2, n, 1, false)
        p = p + 2 + n
      end
      if denied then return denied end
    else
      return redis.error_reply('apply_plan: unknown write ' .. tostring(op))
    end
  end
end

-- The writes, grouped by the driver in the plan's fail-safe order (see
-- the header): one call per group, ZADD/ZREM straight from ARGV slices.
-- unpack() is bounded by the Lua stack: large groups go in slices.
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
