-- Someone leaves. KEYS[5] their session. ARGV[3] session id, ARGV[4] ts,
-- ARGV[5] code, ARGV[6] the frames channel.
-- Returns 'left', 'not' if the session is not in the room, or 'gone'.
local id, code = ARGV[3], ARGV[5]
local mine = redis.call('HGET', KEYS[5], code)
if not alive() then
  if mine then
    redis.call('HDEL', KEYS[5], code)
  end
  return 'gone'
end
if not mine then
  return 'not'
end
redis.call('HDEL', KEYS[5], code)
local held = split(mine)
local theirs = redis.call('HGET', KEYS[4], held[2])
if not (theirs and split(theirs)[1] == id) then
  return 'not'
end
redis.call('HDEL', KEYS[4], held[2])
if held[1] ~= '1' and may_announce() then
  append('leave', held[3], ARGV[4])
end
touch()
local members, watchers = roster(code, ARGV[4])
publish_roster(ARGV[6], code, members, watchers)
publish_left(ARGV[6], id)
return 'left'
