-- POST one row per request to the data API (its id comes from the table's
-- identity), not returning it. BASE comes from the environment.
local base = os.getenv("BASE")
math.randomseed(os.time())
wrk.headers["content-type"] = "application/json"
wrk.headers["prefer"] = "return=minimal"
request = function()
  local body = string.format('{"item":%d,"note":"written"}', math.random(1, 10000))
  return wrk.format("POST", base .. "/rest/v1/entries", nil, body)
end
