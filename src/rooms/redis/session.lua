-- A session's rooms, each as CODE, WATCH, NAME, and a use of it: it lives
-- another ARGV[1] ms. KEYS[1] the session. Only rooms whose names still
-- point back at this session count; the rest (rooms gone or made again
-- under the same code) are dropped. An empty reply: no such session (one
-- that is in no room is no session: joining again makes a new one).
local id = ARGV[2]
local rooms = redis.call('HGETALL', KEYS[1])
local found = {}
for i = 1, #rooms, 2 do
  local code, held = rooms[i], rooms[i + 1]
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
if #found > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return found
