-- client_credentials with client_secret_basic, keep-alive: the like-for-like request of
-- the token-endpoint comparison (the peers' token.lua sends exactly this body).
--
--   wrk -t2 -c32 -d15s --latency -s token_basic.lua URL -- CLIENT_ID SECRET [CERT_HEADER]
--
-- CERT_HEADER, when given, is sent as X-SSL-Client-Cert: the client certificate as
-- nginx's $ssl_client_escaped_cert (URL-encoded PEM), for tessera in proxy mode.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

function init(args)
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = common.basic(args[1], args[2])
  if args[3] and args[3] ~= "" then
    wrk.headers["X-SSL-Client-Cert"] = args[3]
  end
end

function done(summary, latency, requests)
  common.done(summary, latency)
end
