package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("tag", os.time() .. "-" .. counter)
end
local n = 0
request = function()
  n = n + 1
  local headers = {}
  for k, v in pairs(c.headers) do headers[k] = v end
  headers["Content-Type"] = "application/fhir+json"
  local body = string.format([[{"resourceType":"Observation","identifier":[{"system":"urn:example:bench-create","value":"%s-%d"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://medis.or.jp/CodeSystem/master-JLAC10-17digits","code":"3D046000001906202","display":"HbA1c"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2026-11-21T09:00:00+09:00","valueQuantity":{"value":%.1f,"unit":"%%"}}]],
    tag, n, c.pick(c.ids), 5 + math.random() * 2)
  return wrk.format("POST", c.prefix .. "/Observation", headers, body)
end
