-- History: ARGV[3] '' for the newest ARGV[4] events (newest first) below
-- id ARGV[5] ('' for the newest of all), else the events after id ARGV[3],
-- oldest first, at most ARGV[4]. False if the room is gone.
if not alive() then
  return false
end
if ARGV[3] == '' then
  local top = '+'
  if ARGV[5] ~= '' then
    top = '(0-' .. ARGV[5]
  end
  return redis.call('XREVRANGE', KEYS[3], top, '-', 'COUNT', ARGV[4])
end
return redis.call('XRANGE', KEYS[3], '(0-' .. ARGV[3], '+', 'COUNT', ARGV[4])
