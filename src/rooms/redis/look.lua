-- The room's last id, members, watchers and key ('' if open), read
-- together, or false if it is gone. ARGV[3] the code, ARGV[4] ts, ARGV[5] the frames channel.
if not alive() then
  return false
end
local members, watchers, pruned = roster(ARGV[3], ARGV[4])
if pruned then
  publish_roster(ARGV[5], ARGV[3], members, watchers)
end
return { last_id(), members, watchers, room_key() }
