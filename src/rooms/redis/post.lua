-- A message. KEYS[5] the speaker's session. ARGV[3] session id, ARGV[4]
-- code, ARGV[5] ts, ARGV[6] text, ARGV[7] its Idempotency-Key ('' for
-- none), ARGV[8] the text's SHA-1, ARGV[9] now (ms), ARGV[10] how long a
-- key is remembered (ms).
-- Returns { id, name } with the name the session holds in the room now,
-- { 'again', id, name, ts, digest } for a key this session stored a
-- message under within the window (nothing is stored), { 'not' } if it
-- holds no name there (or only watches), or { 'gone' } if the room is
-- gone.
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
-- The keys sent, SESSION TAB KEY -> ID TAB NAME TAB TS TAB DIGEST, and
-- when each was sent, to forget those past the window a few at a time.
local field = ARGV[3] .. '\t' .. ARGV[7]
if ARGV[7] ~= '' then
  local old = redis.call('ZRANGEBYSCORE', posted_at, '-inf', '(' .. (tonumber(ARGV[9]) - tonumber(ARGV[10])), 'LIMIT', 0, 16)
  if #old > 0 then
    redis.call('HDEL', posted, unpack(old))
    redis.call('ZREM', posted_at, unpack(old))
  end
  local seen = redis.call('HGET', posted, field)
  if seen then
    local kept = split(seen)
    return { 'again', kept[1], kept[2], kept[3], kept[4] }
  end
end
local id = append('message', held[3], ARGV[5], ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', posted, field, id .. '\t' .. held[3] .. '\t' .. ARGV[5] .. '\t' .. ARGV[8])
  redis.call('ZADD', posted_at, ARGV[9], field)
end
touch()
return { tostring(id), held[3] }
