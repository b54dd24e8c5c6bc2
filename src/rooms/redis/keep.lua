-- A node has streams open in this room, or had until just now: the room
-- lives another TTL, and the node says who has them: ARGV[9..] (before
-- the last ARGV) are the sessions with a stream open here, until ARGV[5]
-- (ms); with none, the node's entry goes. ARGV[3] the code, ARGV[4] ts,
-- ARGV[6] the frames channel, ARGV[7] the node's id, and ARGV[8] is '1'
-- when who is online here changed (the roster is published then, and
-- whenever a node's entry was found past its time).
-- Returns 1, or 0 if the room is gone (the node then forgets it, which
-- ends its streams).
if not alive() then
  return 0
end
touch()
local sessions = {}
for i = 9, #ARGV - 1 do
  table.insert(sessions, ARGV[i])
end
if #sessions > 0 then
  redis.call('HSET', online_key, ARGV[7], ARGV[5] .. ' ' .. table.concat(sessions, ' '))
  redis.call('PEXPIRE', online_key, ARGV[1])
else
  redis.call('HDEL', online_key, ARGV[7])
end
local _, pruned = online_sessions()
if pruned or ARGV[8] == '1' then
  local members, watchers = roster(ARGV[3], ARGV[4])
  publish_roster(ARGV[6], ARGV[3], members, watchers)
end
return 1
