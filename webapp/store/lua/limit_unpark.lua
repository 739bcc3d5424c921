-- uses: limits
-- A parked job was canceled or deleted: take its id out of its key's parked list, so the key's
-- waiting count stays true (lib/limits.lua). ARGV: 1 the limit key, 2 the job id.
redis.call('LREM', '{{LIMIT_PARKED_PREFIX}}' .. ARGV[1], 0, ARGV[2])
limit_forget_if_idle(ARGV[1])
return 1
