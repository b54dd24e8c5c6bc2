-- A message. KEYS[5] the speaker's session. ARGV[3] session id, ARGV[4]
-- code, ARGV[5] ts, ARGV[6] text, ARGV[7] its Idempotency-Key ('' for
-- none), ARGV[8] the text's SHA-1, ARGV[9] now (ms), ARGV[10] how long a
-- key is remembered (ms), ARGV[11] the sender as a message's `by` (the
-- SHA-1 of the session id: the log never holds the id).
-- Returns { id, name } with the name the session holds in the room now,
-- { 'again', id, name, ts, digest } for a key this session stored a
-- message under within the window (nothing is stored), { 'not' } if it
-- holds no name there (or only watches), or { 'gone' } if the room is
-- gone.
local name, refused = asker()
if not name then
  return refused
end
-- The keys sent, SESSION TAB KEY -> ID TAB NAME TAB TS TAB DIGEST, and
-- when each was sent, to forget those past the window a few at a time.
local field = ARGV[3] .. '\t' .. ARGV[7]
if ARGV[7] ~= '' then
  local old = redis.call('ZRANGEBYSCORE', posted_at, '-inf', '(' .. (tonumber(ARGV[9]) - tonumber(ARGV[10])), 'LIMIT', 0, 16)
  if #old > 0 then
    for _, value in ipairs(redis.call('HMGET', posted, unpack(old))) do
      if value then
        redis.call('HDEL', posted_ids, split(value)[1])
      end
    end
    redis.call('HDEL', posted, unpack(old))
    redis.call('ZREM', posted_at, unpack(old))
  end
  local seen = redis.call('HGET', posted, field)
  if seen then
    local kept = split(seen)
    return { 'again', kept[1], kept[2], kept[3], kept[4] }
  end
end
local id = append('message', name, ARGV[5], ARGV[6], { 'by', ARGV[11] })
if ARGV[7] ~= '' then
  redis.call('HSET', posted, field, id .. '\t' .. name .. '\t' .. ARGV[5] .. '\t' .. ARGV[8])
  redis.call('HSET', posted_ids, id, field)
  redis.call('ZADD', posted_at, ARGV[9], field)
end
touch()
return { tostring(id), name }
