-- Files one held name again under the key this version gives it.
-- KEYS[1] the room's names, KEYS[2] the holder's session. ARGV[1] the old
-- key, ARGV[2] the new one, ARGV[3] the room's code.
-- Returns 1 if it moved; 0 if there was nothing to move, or a lookalike
-- holds the new key already (both keep their names, as admitted).
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], held)
local mine = redis.call('HGET', KEYS[2], ARGV[3])
if mine then
  local watch, key, name = string.match(mine, '^([^\t]*)\t([^\t]*)\t(.*)$')
  if key == ARGV[1] then
    redis.call('HSET', KEYS[2], ARGV[3], watch .. '\t' .. ARGV[2] .. '\t' .. name)
  end
end
return 1
