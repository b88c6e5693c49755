-- axept Cloud Connect authenticate: JSON {merchantId, keyId, key} (keep-alive).
--
--   wrk ... -s axept.lua URL -- MERCHANT_ID KEY_ID KEY
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

function init(args)
  wrk.method = "POST"
  wrk.body = string.format('{"merchantId": %d, "keyId": %d, "key": "%s"}', tonumber(args[1]), tonumber(args[2]), args[3])
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
