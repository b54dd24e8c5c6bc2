-- One node's heartbeat for one room. ARGV[3] node, ARGV[4] now (ms),
-- ARGV[5] leave grace (ms), ARGV[6] ts, ARGV[7] '1' if this node has
-- streams in the room, ARGV[8..] the members with a stream on this node.
-- Sets this node's entries to exactly those names, then settles every
-- member against everyone here on a live node: present again, gone since
-- now, or gone longer than the grace (leaves, with a `leave` event).
-- Returns how many left.
if not alive() then
  return 0
end
local node, now, grace = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = {}
for i = 8, #ARGV do
  mine[ARGV[i] .. '\t' .. node] = true
end
local present = {}
local here = redis.call('HKEYS', KEYS[5])
for _, field in ipairs(here) do
  local name, at = string.match(field, '^(.*)\t([^\t]*)$')
  local live
  if at == node then
    live = mine[field]
    mine[field] = nil
  else
    live = redis.call('EXISTS', 'roomcast:node:' .. at) == 1
  end
  if live then
    present[name] = true
  else
    redis.call('HDEL', KEYS[5], field)
  end
end
for field in pairs(mine) do
  redis.call('HSET', KEYS[5], field, 1)
  present[string.match(field, '^(.*)\t')] = true
end
local left = 0
local members = redis.call('HGETALL', KEYS[4])
for i = 1, #members, 2 do
  local name, seen = members[i], tonumber(members[i + 1])
  if present[name] then
    present[name] = nil
    if seen ~= 0 then
      redis.call('HSET', KEYS[4], name, 0)
    end
  elseif seen == 0 then
    redis.call('HSET', KEYS[4], name, now)
  elseif now - seen >= grace then
    redis.call('HDEL', KEYS[4], name)
    append('leave', name, ARGV[6])
    left = left + 1
  end
end
-- Here but no longer a member (their node lost Redis for longer than the
-- grace, and others saw them leave): they are back.
for name in pairs(present) do
  redis.call('HSET', KEYS[4], name, 0)
  append('join', name, ARGV[6])
end
if ARGV[7] == '1' then
  touch()
end
return left
