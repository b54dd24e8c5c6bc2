-- A new room under a free code. ARGV[3]: created at (ms), ARGV[4] a
-- private room's key ('' for an open room); the record is CREATED TAB KEY.
-- Returns 1, or 0 if the code is taken (by a room, or one that ended
-- less than --ended-ttl ago).
if redis.call('EXISTS', KEYS[1] .. ':ends') == 1 then
  return 0
end
if not redis.call('SET', KEYS[1], ARGV[3] .. '\t' .. ARGV[4], 'NX', 'PX', ARGV[1]) then
  return 0
end
-- Whatever an ended room of the same code left behind goes.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], kept_messages, kept_notices, posted, posted_at, online_key)
mark_end()
return 1
