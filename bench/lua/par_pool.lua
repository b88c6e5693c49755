-- Nexi PAR with a nested-JWE client assertion, each request with its own assertion.
--
--   wrk ... -s par_pool.lua URL -- POOL_FILE THREADS BEARER_TOKEN CERT_HEADER
--
-- POOL_FILE holds one complete form body per line (client_assertion, client_id, scope,
-- redirect_uri), each assertion with a unique jti, made before the run. Thread `id`
-- (0-based) takes lines id+1, id+1+THREADS, ...: no assertion is ever sent twice.
-- When a thread runs out it stops (exhausted=1 in the summary): the harness then
-- refuses the figure and asks for a bigger pool. The first request() of thread 0 is
-- only formatted by wrk to check it (never sent), which costs one line.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require "common"

setup = common.setup

local bodies = {}
local pos = 0
local path

function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id and #line > 0 then
      bodies[#bodies + 1] = line
    end
    i = i + 1
  end
  pool = #bodies
  used = 0
  exhausted = 0
  path = wrk.path
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  if args[4] and args[4] ~= "" then
    wrk.headers["X-SSL-Client-Cert"] = args[4]
  end
end

function request()
  pos = pos + 1
  local body = bodies[pos]
  if not body then
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz", {}, nil)
  end
  bodies[pos] = nil
  used = used + 1
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  common.count(status, body)
end

function done(summary, latency, requests)
  common.done(summary, latency, { "pool", "used", "exhausted", "bad" })
end
