-- Shared by every room script. KEYS, always in this order:
--   1 the room record (CREATED TAB KEY)  2 its last id  3 its log (a stream)
--   4 its names: name key (lower case, confusable skeleton) ->
--     SESSION TAB WATCH ('1' or '0') TAB NAME
-- ARGV[1] is the room TTL in ms, ARGV[2] --history (messages kept), and
-- the last ARGV (after the script's own) --ended-ttl in ms.
-- A session is the key roomcast:session:ID, a hash of
-- CODE -> WATCH TAB KEY TAB NAME, and '' -> '1' (it exists, in no room or
-- many); a participation is real only when the
-- room's names point back at the session (a room made again under an
-- old code starts with no names, so nobody from before is in it).

local function alive()
  return redis.call('EXISTS', KEYS[1]) == 1
end

-- The ids of the messages and of the notices the log keeps, oldest
-- first: how --history's rule finds what goes (keys of the room's slot).
local kept_messages = KEYS[1] .. ':kept-messages'
local kept_notices = KEYS[1] .. ':kept-notices'
-- The Idempotency-Keys of its messages (see post.lua).
local posted = KEYS[1] .. ':posted'
local posted_at = KEYS[1] .. ':posted-at'
-- How its messages read now, if changed: ID -> JSON {"text","edited",
-- "reactions":[{"emoji","names":[...],"by":[...]}]} (see amend.lua); the
-- messages deleted, ID -> ID TAB TS, scored by ID (their log entries are
-- gone); and which key each keyed message was posted under, ID -> FIELD.
local amended = KEYS[1] .. ':amended'
local deleted = KEYS[1] .. ':deleted'
local posted_ids = KEYS[1] .. ':posted-ids'
-- Who is here now: node id -> UNTIL SESSION SESSION ..., the sessions
-- with a stream open in the room on that node, until UNTIL (ms; see
-- keep.lua).
local online_key = KEYS[1] .. ':online'

-- Redis's clock, in ms since the epoch.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- When the room ends if nothing happens first, and whether it is private
-- (ENDS TAB 1 or 0), kept --ended-ttl past that: once the room's keys
-- expire, this answers "ended on", and create.lua gives nobody its code.
local function mark_end()
  local ttl = tonumber(ARGV[1])
  local ends = now_ms() + ttl
  local record = redis.call('GET', KEYS[1]) or ''
  local private = string.find(record, '\t.') and '1' or '0'
  local reserved = tonumber(ARGV[#ARGV])
  redis.call('SET', KEYS[1] .. ':ends', string.format('%d', ends) .. '\t' .. private, 'PX', ttl + reserved)
end

-- Activity: every key of the room lives another TTL.
local function touch()
  for i = 1, #KEYS do
    if string.sub(KEYS[i], 1, 10) == 'roomcast:{' then
      redis.call('PEXPIRE', KEYS[i], ARGV[1])
    end
  end
  for _, key in ipairs({ kept_messages, kept_notices, posted, posted_at, online_key, amended, deleted, posted_ids }) do
    redis.call('PEXPIRE', key, ARGV[1])
  end
  mark_end()
end

-- --history's rule, as in rooms/history.rs: the newest ARGV[2] messages
-- stay, and beside them the newest ARGV[2] notices; when a message goes,
-- the notices before it go too. (A log from before these lists is
-- trimmed whole up to the first message that goes.)
-- (A smaller --history than before trims at the next event.)
local function keep(id, message)
  local most = tonumber(ARGV[2])
  local list = message and kept_messages or kept_notices
  redis.call('RPUSH', list, id)
  -- A list emptied by a trim was deleted: it lives as long as the room.
  redis.call('PEXPIRE', list, ARGV[1])
  while redis.call('LLEN', kept_messages) > most do
    local gone = tonumber(redis.call('LPOP', kept_messages))
    redis.call('XTRIM', KEYS[3], 'MINID', '0-' .. (gone + 1))
    redis.call('HDEL', amended, gone)
    redis.call('ZREMRANGEBYSCORE', deleted, '-inf', gone)
    while true do
      local oldest = redis.call('LINDEX', kept_notices, 0)
      if not oldest or tonumber(oldest) > gone then
        break
      end
      redis.call('LPOP', kept_notices)
    end
  end
  while redis.call('LLEN', kept_notices) > most do
    redis.call('XDEL', KEYS[3], '0-' .. redis.call('LPOP', kept_notices))
  end
end

-- The room's next event. Its stream id is 0-N with N from the room's
-- counter, so SSE ids stay plain integers on every node. `extra`: more
-- fields, { FIELD, VALUE, ... } (a message's sender `by`, a change's
-- `target`...).
local function append(kind, name, ts, text, extra)
  local id = redis.call('INCR', KEYS[2])
  local entry = { 'XADD', KEYS[3], '0-' .. id, 'kind', kind, 'name', name, 'ts', ts }
  if text then
    table.insert(entry, 'text')
    table.insert(entry, text)
  end
  for _, part in ipairs(extra or {}) do
    table.insert(entry, part)
  end
  redis.call(unpack(entry))
  keep(id, kind == 'message')
  return id
end

-- A private room's key ('' for an open room, or one made before keys).
local function room_key()
  local record = redis.call('GET', KEYS[1]) or ''
  return string.match(record, '\t(.*)$') or ''
end

-- Whether a join or leave may be announced: at most 30 a room a minute
-- (the Rust side allows 30 at once, then one each 2 s). Past it people
-- still come and go, without a line in the history each.
local function may_announce()
  local key = KEYS[1] .. ':notices'
  local made = redis.call('INCR', key)
  if made == 1 then
    redis.call('PEXPIRE', key, 60000)
  end
  return made <= 30
end

local function last_id()
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end

local function split(value)
  local parts = {}
  for part in string.gmatch(value .. '\t', '([^\t]*)\t') do
    table.insert(parts, part)
  end
  return parts
end

-- The name session `id` speaks under in room `code`, if it is a member
-- there now (KEYS[5] is the session): its participation is real only
-- when the room's names point back at it.
local function speaker(id, code)
  local mine = redis.call('HGET', KEYS[5], code)
  if not mine then
    return nil
  end
  local held = split(mine)
  local theirs = redis.call('HGET', KEYS[4], held[2])
  if held[1] == '1' or not (theirs and split(theirs)[1] == id) then
    return nil
  end
  return held[3]
end

-- The name the asker (session ARGV[3], room ARGV[4]) speaks under, or
-- nil and what the script answers instead: { 'gone' } for a room gone,
-- { 'not' } for one who holds no member's name there.
local function asker()
  if not alive() then
    return nil, { 'gone' }
  end
  local name = speaker(ARGV[3], ARGV[4])
  if not name then
    return nil, { 'not' }
  end
  return name
end

-- Byte order, as Rust sorts strings (Lua's '<' follows the server's
-- locale).
local function bytewise(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- The sessions whose names roster() found expired, for publish_roster
-- to end their streams.
local ended = {}

-- The sessions with a stream open in the room on any node, as a set; a
-- node's entry past its time goes (the node stopped or froze). The second
-- value is whether one went.
local function online_sessions()
  local online, pruned = {}, false
  local now = now_ms()
  local nodes = redis.call('HGETALL', online_key)
  for i = 1, #nodes, 2 do
    local until_ms, sessions = string.match(nodes[i + 1], '^(%d+)(.*)$')
    if until_ms and tonumber(until_ms) > now then
      for session in string.gmatch(sessions, '%S+') do
        online[session] = true
      end
    else
      redis.call('HDEL', online_key, nodes[i])
      pruned = true
    end
  end
  return online, pruned
end

local function by_name(a, b)
  return bytewise(a.name, b.name)
end

-- The room's members and watchers, each sorted by name, as
-- { name = ..., online = ... }. A name whose session expired is free
-- again: it goes, with a leave for a member (at ts). The third value is
-- whether anything went (publish the roster then).
local function roster(code, ts)
  local members, watchers = {}, {}
  local online, pruned = online_sessions()
  local names = redis.call('HGETALL', KEYS[4])
  for i = 1, #names, 2 do
    local held = split(names[i + 1])
    local session, watch, name = held[1], held[2], held[3]
    if redis.call('HEXISTS', 'roomcast:session:' .. session, code) == 1 then
      local present = { name = name, online = online[session] == true }
      table.insert(watch == '1' and watchers or members, present)
    else
      redis.call('HDEL', KEYS[4], names[i])
      table.insert(ended, session)
      if watch ~= '1' and may_announce() then
        append('leave', name, ts)
      end
      pruned = true
    end
  end
  table.sort(members, by_name)
  table.sort(watchers, by_name)
  return members, watchers, pruned
end

-- The list as serde_json writes it, [{"name":"al","online":true},...]:
-- cjson also escapes '/', which serde_json leaves be (every '/' it
-- writes follows its escaping backslash, so that pair is the one to undo).
local function json_list(present)
  local quoted = {}
  for _, person in ipairs(present) do
    local name = string.gsub(cjson.encode(person.name), '\\/', '/')
    local online = person.online and 'true' or 'false'
    table.insert(quoted, '{"name":' .. name .. ',"online":' .. online .. '}')
  end
  return '[' .. table.concat(quoted, ',') .. ']'
end

-- Ends a session's streams in the room on every node (NUL first: no SSE
-- frame starts so).
local function publish_left(channel, session)
  redis.call('PUBLISH', channel, '\0left ' .. session)
end

-- Sends the room's `members` frame to every node's streams (the same
-- bytes as the Rust side's members_frame), and ends the streams of the
-- sessions found expired.
local function publish_roster(channel, code, members, watchers)
  local json = '{"room":"' .. code .. '","members":' .. json_list(members) .. ',"watchers":' .. json_list(watchers) .. '}'
  redis.call('PUBLISH', channel, 'event: members\ndata: ' .. json .. '\n\n')
  for _, session in ipairs(ended) do
    publish_left(channel, session)
  end
  ended = {}
end
