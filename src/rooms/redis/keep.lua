-- A node has streams open in this room: it lives another TTL. Returns 1,
-- or 0 if it is gone (the node then forgets it, which ends its streams).
if not alive() then
  return 0
end
touch()
return 1
