-- Names ARGV[3] in this room for session ARGV[4] (its key: KEYS[7]).
-- ARGV[5] the room code, ARGV[6] the session's TTL (ms), ARGV[7] the
-- name's key (lower case, confusable skeleton): names are held by key, so
-- a lookalike finds the holder.
-- Refuses ('taken') a name another live session holds here while its
-- member (under the holder's own spelling) is present; a holder who has
-- left loses the name (its session ends). Returns 'ok', 'taken', or
-- 'gone' if the room is gone.
if not alive() then
  return 'gone'
end
-- A session's value is ROOM TAB KEY TAB NAME.
local name, id, key = ARGV[3], ARGV[4], ARGV[7]
local holds = ARGV[5] .. '\t' .. key .. '\t'
local holder = redis.call('HGET', KEYS[6], key)
if holder and holder ~= id then
  local held = 'roomcast:session:' .. holder
  local value = redis.call('GET', held)
  -- Still this name's holder (not renamed, not moved to another room)?
  if value and string.sub(value, 1, #holds) == holds then
    if redis.call('HEXISTS', KEYS[4], string.sub(value, #holds + 1)) == 1 then
      return 'taken'
    end
    redis.call('DEL', held)
  end
end
redis.call('HSET', KEYS[6], key, id)
redis.call('PEXPIRE', KEYS[6], ARGV[1])
redis.call('SET', KEYS[7], holds .. name, 'PX', ARGV[6])
return 'ok'
