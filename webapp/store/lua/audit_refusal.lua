-- Record one refused request in the audit log (webapp/store/audit.py), within its caller's
-- budget: at most ARGV[3] refusals per caller per minute are written, then one entry that says
-- the rest of that minute's are not, then nothing until the next minute. So a key holder (or,
-- on an open API, a client) sending refused requests in a loop cannot push the log's real
-- entries out past AUDIT_MAXLEN: the budget makes that take days, and the log shows who tried.
-- KEYS: 1 the audit stream, 2 the caller's refusal counter for this minute.
-- ARGV: 1 the oldest id kept (retention), 2 the most entries kept, 3 the budget, 4 the counter's
--       lifetime (s), 5 the note the last recorded entry carries, then the entry's field/value pairs.
-- Returns the entry id, or false when the refusal was over the budget and not recorded.
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
local budget = tonumber(ARGV[3])
if count > budget + 1 then return false end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
if count == budget + 1 then
  fields[#fields + 1] = 'note'
  fields[#fields + 1] = ARGV[5]
end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', unpack(fields))
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2])
return id
