-- uses: index
-- Index one job and sweep (webapp/store/listing.py).
-- KEYS: the index sets, then the sweep-position hash. ARGV: 1 job id, 2 score, 3 entries per set.
local sets = {}
for i = 1, #KEYS - 1 do sets[i] = KEYS[i] end
index_and_sweep(sets, KEYS[#KEYS], ARGV[1], ARGV[2], tonumber(ARGV[3]))
return 1
