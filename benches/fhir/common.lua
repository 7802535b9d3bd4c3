-- Shared by the scenarios: the patient list (common ID, family name), a token, helpers.
local M = {}
M.ids, M.families = {}, {}
for line in io.lines(os.getenv("BENCH_PATIENTS")) do
  local id, family = line:match("^(%S+)\t(.*)$")
  if id then
    M.ids[#M.ids + 1] = id
    M.families[#M.families + 1] = family
  end
end
M.prefix = os.getenv("BENCH_PREFIX") or ""
M.headers = { ["Accept"] = "application/fhir+json" }
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then M.headers["Authorization"] = "Bearer " .. token end
function M.encode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
function M.pick(list) return list[math.random(#list)] end
return M
