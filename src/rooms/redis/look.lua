-- The room's last id and members, read together, or false if it is gone.
if not alive() then
  return false
end
return { last_id(), redis.call('HKEYS', KEYS[4]) }
