-- A message. ARGV[3] name, ARGV[4] ts, ARGV[5] text.
-- Returns its id, or false if the room is gone.
if not alive() then
  return false
end
local id = append('message', ARGV[3], ARGV[4], ARGV[5])
touch()
return id
