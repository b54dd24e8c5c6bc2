-- Names ARGV[3] in this room for session ARGV[4] (its key: KEYS[7]).
-- ARGV[5] the room code, ARGV[6] the session's TTL (ms).
-- Refuses ('taken') a name another live session holds here while its
-- member is present; a holder who has left loses the name (its session
-- ends). Returns 'ok', 'taken', or 'gone' if the room is gone.
if not alive() then
  return 'gone'
end
local name, id = ARGV[3], ARGV[4]
local value = ARGV[5] .. '\t' .. name
local holder = redis.call('HGET', KEYS[6], name)
if holder and holder ~= id then
  local held = 'roomcast:session:' .. holder
  if redis.call('GET', held) == value then
    if redis.call('HEXISTS', KEYS[4], name) == 1 then
      return 'taken'
    end
    redis.call('DEL', held)
  end
end
redis.call('HSET', KEYS[6], name, id)
redis.call('PEXPIRE', KEYS[6], ARGV[1])
redis.call('SET', KEYS[7], value, 'PX', ARGV[6])
return 'ok'
