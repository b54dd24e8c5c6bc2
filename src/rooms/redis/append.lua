-- An event of any kind. ARGV[3] kind, ARGV[4] name, ARGV[5] ts, ARGV[6]
-- text (absent for a kind without one).
-- Returns its id, or false if the room is gone.
if not alive() then
  return false
end
local id = append(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
touch()
return id
