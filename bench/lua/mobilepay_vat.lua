-- MobilePay PoS integrator token, with merchant_vat when VAT is given (HTTP Basic, keep-alive).
--
--   wrk ... -s mobilepay_vat.lua URL -- CLIENT_ID SECRET [VAT]
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

function init(args)
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  if args[3] and args[3] ~= "" then
    wrk.body = wrk.body .. "&merchant_vat=" .. common.urlencode(args[3])
  end
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = common.basic(args[1], args[2])
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
