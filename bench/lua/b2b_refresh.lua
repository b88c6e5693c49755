-- B2BINPAY: log in, then rotate refresh tokens (strict rotation: each one used once).
--
--   wrk ... -s b2b_refresh.lua http://127.0.0.1:PORT/b2binpay/token/ -- LOGIN PASSWORD
--
-- Each thread keeps a queue of the refresh tokens it received (from a login or a
-- refresh answer). A request takes the oldest unused one and refreshes it; when the
-- queue is empty (at the start, one per connection) it logs in instead. The summary
-- says how many of each were sent (logins=, refreshes=).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

local queue, head, tail = {}, 1, 0
local login_path, refresh_path, login_body

function init(args)
  login_path = wrk.path
  refresh_path = args[3] or (wrk.path .. "refresh/")
  login_body = string.format('{"data":{"type":"auth-token","attributes":{"login":"%s","password":"%s"}}}', args[1], args[2])
  wrk.headers["Content-Type"] = "application/vnd.api+json"
  logins, refreshes = 0, 0
end

function request()
  if head <= tail then
    local token = queue[head]
    queue[head] = nil
    head = head + 1
    refreshes = refreshes + 1
    return wrk.format("POST", refresh_path, nil,
      '{"data":{"type":"auth-token","attributes":{"refresh":"' .. token .. '"}}}')
  end
  logins = logins + 1
  return wrk.format("POST", login_path, nil, login_body)
end

function response(status, headers, body)
  local token = string.match(body, '"refresh"%s*:%s*"([^"]+)"')
  if token and status >= 200 and status <= 299 then
    tail = tail + 1
    queue[tail] = token
  end
  common.count(status, body)
end

function done(summary, latency, requests)
  common.done(summary, latency, { "logins", "refreshes", "bad" })
end
