-- A stream opens on this node. ARGV[3] node, ARGV[4] ts, ARGV[5] name
-- ('' for a silent follower). A member who is not in the room joins; one
-- within the leave grace is simply back.
-- Returns { last id before any join, members after }, or false if gone.
if not alive() then
  return false
end
local before = last_id()
local name = ARGV[5]
if name ~= '' then
  redis.call('HSET', KEYS[5], name .. '\t' .. ARGV[3], 1)
  local seen = redis.call('HGET', KEYS[4], name)
  if not seen then
    redis.call('HSET', KEYS[4], name, 0)
    append('join', name, ARGV[4])
  elseif seen ~= '0' then
    redis.call('HSET', KEYS[4], name, 0)
  end
end
touch()
return { before, redis.call('HKEYS', KEYS[4]) }
