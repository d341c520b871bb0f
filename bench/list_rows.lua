-- A list of 20 rows filtered by category and sorted by score, a random
-- category each request.
local base = os.getenv("BASE")
local style = os.getenv("STYLE")
math.randomseed(os.time() + 1)
request = function()
  local c = math.random(0, 49)
  if style == "pocketbase" then
    return wrk.format("GET", string.format(
      "%s/api/collections/items/records?filter=(category=%d)&sort=-score&perPage=20&skipTotal=1", base, c))
  end
  return wrk.format("GET", string.format(
    "%s/rest/v1/items?select=*&category=eq.%d&order=score.desc&limit=20", base, c))
end
