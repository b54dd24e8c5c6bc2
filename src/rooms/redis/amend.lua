-- An edit, a delete or a reaction of message ARGV[6]. KEYS[5] the asker's
-- session. ARGV[3] session id, ARGV[4] code, ARGV[5] ts, ARGV[7] 'edit',
-- 'delete' or 'react', ARGV[8] the new text or the emoji, ARGV[9] the
-- asker as a message's `by`.
-- Returns { 'done', ID, ON, SAID, NAME, TS, BY, TEXT, STATE }: the change's
-- id ('' if it changed nothing: an edit to the same words), whether a
-- reaction went on ('1') or off ('0'), the asker's name, and the message
-- as it reads now
-- (its name, ts, sender and text as posted, and the JSON of amended's
-- entry: '' if none). Else { 'not' } if the asker holds no member's name
-- in the room, { 'none' } if no message has that id (any more),
-- { 'not-yours' } for another's message to edit or delete, { 'gone' }
-- if the room is gone; a delete, { 'deleted', ID, TS } (the message's
-- ts).
local name, refused = asker()
if not name then
  return refused
end
local target = ARGV[6]
local found = redis.call('XRANGE', KEYS[3], '0-' .. target, '0-' .. target)
if #found == 0 then
  return { 'none' }
end
local message = {}
local fields = found[1][2]
for i = 1, #fields, 2 do
  message[fields[i]] = fields[i + 1]
end
if message.kind ~= 'message' then
  return { 'none' }
end
local what = ARGV[7]
if what ~= 'react' and message.by ~= ARGV[9] then
  return { 'not-yours' }
end
local stored = redis.call('HGET', amended, target)
local state = stored and cjson.decode(stored) or {}
state.reactions = state.reactions or {}
-- (cjson writes an empty table as an object: an empty list is left out.)
local function encode()
  if #state.reactions == 0 then
    state.reactions = nil
  end
  local json = cjson.encode(state)
  state.reactions = state.reactions or {}
  return json
end
local function reads_now(id, on, json)
  return { 'done', id, on, name, message.name, message.ts, message.by or '', message.text or '', json }
end

if what == 'edit' then
  if (state.text or message.text) == ARGV[8] then
    return reads_now('', '1', stored or '')
  end
  local id = append('edit', name, ARGV[5], ARGV[8], { 'target', target })
  state.text, state.edited = ARGV[8], ARGV[5]
  -- The changes, so that a delete takes them out with the message.
  state.changes = state.changes or {}
  table.insert(state.changes, id)
  local json = encode()
  redis.call('HSET', amended, target, json)
  touch()
  return reads_now(tostring(id), '1', json)
end

if what == 'delete' then
  local id = append('delete', '', ARGV[5], nil, { 'target', target })
  redis.call('XDEL', KEYS[3], '0-' .. target)
  for _, change in ipairs(state.changes or {}) do
    redis.call('XDEL', KEYS[3], '0-' .. change)
  end
  redis.call('HDEL', amended, target)
  redis.call('ZADD', deleted, target, target .. '\t' .. message.ts)
  -- Its key stays (a repeat of the post must not store it again) with
  -- nothing of the words: no name, no digest.
  local field = redis.call('HGET', posted_ids, target)
  if field and redis.call('HEXISTS', posted, field) == 1 then
    redis.call('HSET', posted, field, target .. '\t\t' .. message.ts .. '\t')
  end
  touch()
  return { 'deleted', tostring(id), message.ts }
end

-- A reaction: on if this asker has not given it, else off.
local emoji, on = ARGV[8], true
local group
for _, g in ipairs(state.reactions) do
  if g.emoji == emoji then
    group = g
  end
end
if group then
  for i, by in ipairs(group.by) do
    if by == ARGV[9] then
      on = false
      table.remove(group.by, i)
      table.remove(group.names, i)
      break
    end
  end
  if on then
    table.insert(group.by, ARGV[9])
    table.insert(group.names, name)
  end
else
  table.insert(state.reactions, { emoji = emoji, names = { name }, by = { ARGV[9] } })
end
local kept = {}
for _, g in ipairs(state.reactions) do
  if #g.names > 0 then
    table.insert(kept, g)
  end
end
state.reactions = kept
local flag = on and '1' or '0'
local id = append('reaction', name, ARGV[5], nil, { 'target', target, 'emoji', emoji, 'on', flag, 'by', ARGV[9] })
state.changes = state.changes or {}
table.insert(state.changes, id)
local json = encode()
redis.call('HSET', amended, target, json)
touch()
return reads_now(tostring(id), flag, json)
