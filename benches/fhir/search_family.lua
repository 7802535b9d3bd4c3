package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  return wrk.format("GET", c.prefix .. "/Patient?family=" .. c.encode(c.pick(c.families)), c.headers)
end
