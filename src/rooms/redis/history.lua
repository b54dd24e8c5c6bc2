-- History: ARGV[3] '' for the newest ARGV[4] events (newest first) below
-- id ARGV[5] ('' for the newest of all), else the events after id ARGV[3],
-- oldest first, at most ARGV[4]. False if the room is gone.
-- Returns { ENTRIES, STATES, DELETED }: each entry's amended state ('' if
-- none: see common.lua), and the messages deleted within the ids read
-- (ID TAB TS each), which the log no longer has.
if not alive() then
  return false
end
local count = tonumber(ARGV[4])
local entries, low, high
if ARGV[3] == '' then
  local top = '+'
  high = '+inf'
  if ARGV[5] ~= '' then
    top = '(0-' .. ARGV[5]
    high = '(' .. ARGV[5]
  end
  entries = redis.call('XREVRANGE', KEYS[3], top, '-', 'COUNT', ARGV[4])
  low = '-inf'
  if #entries == count then
    low = string.sub(entries[#entries][1], 3)
  end
else
  entries = redis.call('XRANGE', KEYS[3], '(0-' .. ARGV[3], '+', 'COUNT', ARGV[4])
  low = '(' .. ARGV[3]
  high = '+inf'
  if #entries == count then
    high = string.sub(entries[#entries][1], 3)
  end
end
local states = {}
for i, entry in ipairs(entries) do
  states[i] = redis.call('HGET', amended, string.sub(entry[1], 3)) or ''
end
local gone = redis.call('ZRANGEBYSCORE', deleted, low, high)
return { entries, states, gone }
