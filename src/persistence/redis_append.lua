local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] then
  return redis.error_reply('NOT_OWNER ' .. tostring(held))
end
local tag = ARGV[2]
-- An event seq already stored means two writers of one stream: refuse before writing anything.
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'E' then
    if redis.call('HEXISTS', 'ev:' .. tag .. ':' .. ARGV[i + 1], ARGV[i + 2]) == 1 then
      return redis.error_reply('SEQ_TAKEN ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    end
    i = i + 4
  elseif op == 'T' then
    i = i + 3
  else
    i = i + 4
  end
end
i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'E' then
    redis.call('HSET', 'ev:' .. tag .. ':' .. ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'S' then
    redis.call('HSET', 'sn:' .. tag .. ':' .. ARGV[i + 1], 'seq', ARGV[i + 2], 'state', ARGV[i + 3])
    i = i + 4
  elseif op == 'T' then
    local key = 'ev:' .. tag .. ':' .. ARGV[i + 1]
    local upto = tonumber(ARGV[i + 2])
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if tonumber(field) <= upto then
        redis.call('HDEL', key, field)
      end
    end
    i = i + 3
  elseif op == 'R' then
    local key = 'rm:' .. tag .. ':' .. ARGV[i + 1]
    if ARGV[i + 3] == '' then
      redis.call('ZREM', key, ARGV[i + 2])
    else
      redis.call('ZADD', key, ARGV[i + 3], ARGV[i + 2])
    end
    i = i + 4
  elseif op == 'A' then
    redis.call('ZADD', 'ak:' .. tag .. ':' .. ARGV[i + 1], 0, ARGV[i + 2])
    redis.call('HSET', 'av:' .. tag .. ':' .. ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'X' then
    if ARGV[i + 3] == '1' then
      redis.call('ZADD', 'ix:' .. tag .. ':' .. ARGV[i + 1], 0, ARGV[i + 2])
    else
      redis.call('ZREM', 'ix:' .. tag .. ':' .. ARGV[i + 1], ARGV[i + 2])
    end
    i = i + 4
  elseif op == 'V' then
    redis.call('HSET', 'vw:' .. tag .. ':' .. ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    redis.call('XADD', 'vs:' .. tag, 'MAXLEN', '~', '100000', '*', 'by', ARGV[1],
      'kind', ARGV[i + 1], 'id', ARGV[i + 2], 'view', ARGV[i + 3])
    i = i + 4
  else
    return redis.error_reply('BAD_RECORD ' .. tostring(op))
  end
end
return 1
