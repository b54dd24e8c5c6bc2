-- A message. KEYS[5] the speaker's session. ARGV[3] session id, ARGV[4]
-- code, ARGV[5] ts, ARGV[6] text.
-- Returns { id, name } with the name the session holds in the room now,
-- { 'not' } if it holds none there (or only watches), or { 'gone' } if
-- the room is gone.
if not alive() then
  return { 'gone' }
end
local mine = redis.call('HGET', KEYS[5], ARGV[4])
if not mine then
  return { 'not' }
end
local held = split(mine)
local theirs = redis.call('HGET', KEYS[4], held[2])
if held[1] == '1' or not (theirs and split(theirs)[1] == ARGV[3]) then
  return { 'not' }
end
local id = append('message', held[3], ARGV[5], ARGV[6])
touch()
return { tostring(id), held[3] }
