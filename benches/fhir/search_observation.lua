package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  return wrk.format("GET", c.prefix .. "/Observation?patient=Patient/" .. c.pick(c.ids) .. "&date=ge2026-06-01", c.headers)
end
