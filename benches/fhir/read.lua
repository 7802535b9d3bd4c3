package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  return wrk.format("GET", c.prefix .. "/Patient/" .. c.pick(c.ids), c.headers)
end
