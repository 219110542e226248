-- wrk script: paced load. Every connection waits MS milliseconds between an
-- answer and its next request, so that each peer is offered about the same
-- rate and neither it nor the load generator runs flat out: the latency
-- percentiles then compare the servers, not wrk's own queueing.
-- Usage: wrk ... -s pace.lua URL -- MS
local ms = 1
init = function(args) ms = tonumber(args[1] or "1") end
delay = function() return ms end
