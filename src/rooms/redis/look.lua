-- The room's last id, members, watchers and key ('' if open), read
-- together, or false if it is gone. Each name comes as '1NAME' if online,
-- '0NAME' if away. ARGV[3] the code, ARGV[4] ts, ARGV[5] the frames channel.
if not alive() then
  return false
end
local members, watchers, pruned = roster(ARGV[3], ARGV[4])
if pruned then
  publish_roster(ARGV[5], ARGV[3], members, watchers)
end
local function flagged(present)
  local out = {}
  for _, person in ipairs(present) do
    table.insert(out, (person.online and '1' or '0') .. person.name)
  end
  return out
end
return { last_id(), flagged(members), flagged(watchers), room_key() }
