-- GET one row by primary key, a random id each request (ids 1..10000 with
-- a public row: i % 10 ~= 0). BASE and STYLE come from the environment.
local base = os.getenv("BASE")
local style = os.getenv("STYLE")
math.randomseed(os.time())
request = function()
  local i = math.random(1, 9999)
  if i % 10 == 0 then i = i + 1 end
  if style == "pocketbase" then
    return wrk.format("GET", string.format("%s/api/collections/items/records/r%014d", base, i))
  end
  return wrk.format("GET", string.format("%s/rest/v1/items?id=eq.%d", base, i))
end
