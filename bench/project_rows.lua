-- One row by primary key, a random id each request (1..10000), three ways:
-- STYLE=main (the instance's data API), project (a project's data API at
-- /projects/{PROJECT}/rest/v1) or dbify (POST /query, Dbify's `read`).
-- BASE, STYLE, PROJECT and KEY come from the environment.
local base = os.getenv("BASE")
local style = os.getenv("STYLE")
local project = os.getenv("PROJECT")
local key = os.getenv("KEY")
math.randomseed(os.time())
request = function()
  local i = math.random(1, 10000)
  if style == "dbify" then
    local body = string.format(
      '{"projectId":%s,"apiKey":"%s","operation":"read","tableName":"items","payload":{"id":%d}}',
      project, key, i)
    return wrk.format("POST", base .. "/query", { ["content-type"] = "application/json" }, body)
  end
  local headers = { ["apikey"] = key }
  if style == "project" then
    return wrk.format("GET", string.format("%s/projects/%s/rest/v1/items?id=eq.%d", base, project, i), headers)
  end
  return wrk.format("GET", string.format("%s/rest/v1/items?id=eq.%d", base, i), headers)
end
