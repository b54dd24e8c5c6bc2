-- A session's rooms, and a use of it: it lives another ARGV[1] ms.
-- KEYS[1] the session. Its field '' marks that it exists, in no room or
-- many; every other field is a room. Only rooms whose names still point
-- back at this session count; the rest (rooms gone or made again under
-- the same code) are dropped.
-- Returns {} for no such session, else { 'session', then CODE, WATCH,
-- NAME for each room }.
local id = ARGV[2]
local rooms = redis.call('HGETALL', KEYS[1])
local found = { 'session' }
for i = 1, #rooms, 2 do
  local code, held = rooms[i], rooms[i + 1]
  if code ~= '' then
    local parts = {}
    for part in string.gmatch(held .. '\t', '([^\t]*)\t') do
      table.insert(parts, part)
    end
    local theirs = redis.call('HGET', 'roomcast:{' .. code .. '}:names', parts[2])
    if theirs and string.sub(theirs, 1, #id + 1) == id .. '\t' then
      table.insert(found, code)
      table.insert(found, parts[1])
      table.insert(found, parts[3])
    else
      redis.call('HDEL', KEYS[1], code)
    end
  end
end
if #found == 1 and redis.call('HEXISTS', KEYS[1], '') == 0 then
  return {}
end
redis.call('HSET', KEYS[1], '', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return found
