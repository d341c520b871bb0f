-- A page of 20 rows sorted by score, with the total count, a random page
-- (1..50) each request: SelfDB's own API (`/tables/{id}/data`, as the
-- Python SDK's `data.fetch` asks), the data API with `Prefer: count=exact`
-- (given as a header by crud.sh), and PocketBase's list (which counts by
-- default). BASE, STYLE and TABLE_ID come from the environment.
local base = os.getenv("BASE")
local style = os.getenv("STYLE")
local table_id = os.getenv("TABLE_ID")
math.randomseed(os.time() + 2)
request = function()
  local page = math.random(1, 50)
  if style == "pocketbase" then
    return wrk.format("GET", string.format(
      "%s/api/collections/items/records?sort=-score&perPage=20&page=%d", base, page))
  end
  if style == "selfdb-api" then
    return wrk.format("GET", string.format(
      "%s/tables/%s/data?page=%d&page_size=20&sort_by=score&sort_order=desc", base, table_id, page))
  end
  return wrk.format("GET", string.format(
    "%s/rest/v1/items?select=*&order=score.desc&limit=20&offset=%d", base, (page - 1) * 20))
end
