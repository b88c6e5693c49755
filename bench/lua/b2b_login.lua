-- B2BINPAY login alone: POST /token/ with the JSON:API login/password body (keep-alive).
--
--   wrk ... -s b2b_login.lua http://127.0.0.1:PORT/b2binpay/token/ -- LOGIN PASSWORD
--
-- Every request starts a new refresh family (a login), as an API user's first call does.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

function init(args)
  wrk.method = "POST"
  wrk.body = string.format('{"data":{"type":"auth-token","attributes":{"login":"%s","password":"%s"}}}', args[1], args[2])
  wrk.headers["Content-Type"] = "application/vnd.api+json"
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
