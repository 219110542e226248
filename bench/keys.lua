-- wrk script: cycles through NKEYS distinct pre-formatted list queries,
-- starting at key START (default 1).
-- Usage: wrk ... -s keys.lua URL -- NKEYS [START]
--   NKEYS <= 1000: /api/v2/batches?page_size=N&project_id=proj-NNNN (as peerbench)
--   NKEYS  > 1000: /api/v2/batches?page_size=20&page_token=tNNNNNN&project_id=proj-0001
local reqs, nkeys, n = {}, 1000, 0
init = function(args)
  nkeys = tonumber(args[1] or "1000")
  n = (tonumber(args[2] or "1") or 1) - 1
  for i = 1, nkeys do
    local p
    if nkeys <= 1000 then
      p = string.format("/api/v2/batches?page_size=%d&project_id=proj-%04d", (i % 10 + 1) * 10, i)
    else
      p = string.format("/api/v2/batches?page_size=20&page_token=t%06d&project_id=proj-0001", i)
    end
    reqs[i] = wrk.format("GET", p)
  end
end
request = function()
  n = n + 1
  if n > nkeys then n = 1 end
  return reqs[n]
end
