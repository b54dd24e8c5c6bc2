-- Someone joins. KEYS[5] their session. ARGV[3] session id, ARGV[4] name,
-- ARGV[5] its key, ARGV[6] '1' to watch, ARGV[7] session TTL (ms),
-- ARGV[8] ts, ARGV[9] code, ARGV[10] the frames channel, ARGV[11] the key
-- given ('' for none), which a private room needs from a newcomer,
-- ARGV[12] the version of the name key this node files names under.
-- Returns { 'older' } if Redis's names are filed under a newer one (this
-- node must be upgraded: it would file lookalikes apart), { 'joined' }, { 'same', watch, name } if this session is in the
-- room under that name already, { 'already', name } if under another,
-- { 'taken' }, { 'denied' } for a private room without its key (which
-- answers as an unknown one, but is there), or { 'gone' }.
if tonumber(redis.call('GET', 'roomcast:names-key') or '0') > tonumber(ARGV[12]) then
  return { 'older' }
end
if not alive() then
  return { 'gone' }
end
local id, name, key, watch, code = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[9]
local members, watchers, pruned = roster(code, ARGV[8])
-- A refusal still tells every node of names found expired.
local function refuse(reply)
  if pruned then
    publish_roster(ARGV[10], code, members, watchers)
  end
  return reply
end
local mine = redis.call('HGET', KEYS[5], code)
if mine then
  local held = split(mine)
  local theirs = redis.call('HGET', KEYS[4], held[2])
  if theirs and split(theirs)[1] == id then
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
    if held[2] == key then
      return refuse({ 'same', held[1], held[3] })
    end
    return refuse({ 'already', held[3] })
  end
end
local private = room_key()
-- Compared by digest, so how long it takes tells nothing of the key.
if private ~= '' and redis.sha1hex(private) ~= redis.sha1hex(ARGV[11]) then
  return refuse({ 'denied' })
end
if redis.call('HEXISTS', KEYS[4], key) == 1 then
  return refuse({ 'taken' })
end
redis.call('HSET', KEYS[4], key, id .. '\t' .. watch .. '\t' .. name)
redis.call('HSET', KEYS[5], code, watch .. '\t' .. key .. '\t' .. name, '', '1')
redis.call('PEXPIRE', KEYS[5], ARGV[7])
if watch ~= '1' and may_announce() then
  append('join', name, ARGV[8])
end
touch()
members, watchers = roster(code, ARGV[8])
publish_roster(ARGV[10], code, members, watchers)
return { 'joined' }
