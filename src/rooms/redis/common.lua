-- Shared by every room script. KEYS, always in this order:
--   1 the room record  2 its last id  3 its log (a stream)
--   4 its members (name -> 0 if present, else ms since the epoch it was
--     last seen)  5 who is here (name TAB node -> 1)  6 name holders
--     (name -> session id)
-- ARGV[1] is the room TTL in ms, ARGV[2] the history length.

local function alive()
  return redis.call('EXISTS', KEYS[1]) == 1
end

-- Activity: every key of the room lives another TTL.
local function touch()
  for i = 1, #KEYS do
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end

-- The room's next event. Its stream id is 0-N with N from the room's
-- counter, so SSE ids stay plain integers on every node.
local function append(kind, name, ts, text)
  local id = redis.call('INCR', KEYS[2])
  local entry = { 'XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '0-' .. id,
                  'kind', kind, 'name', name, 'ts', ts }
  if text then
    table.insert(entry, 'text')
    table.insert(entry, text)
  end
  redis.call(unpack(entry))
  return id
end

local function last_id()
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
