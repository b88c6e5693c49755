-- Shared helpers for the wrk scripts of bench/ (loaded with require "common").
--
-- Every script prints one machine-readable line at the end (latency in microseconds):
--   SUMMARY requests=N secs=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=.. non2xx=N
--           err_connect=N err_read=N err_write=N err_timeout=N [name=value ...]
-- non2xx is wrk's own count of responses with a status >= 400 ("Non-2xx or 3xx").
-- Scripts that read responses also count statuses themselves (bad=N) and keep one
-- sample of a failing response (a SAMPLE line), which makes a broken set-up obvious.
local M = {}

local threads = {}

-- setup(thread) runs in the main Lua state, once per thread, before the thread's init():
-- each thread gets its index (0-based) as the global `id`.
function M.setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Count one response (call from response()); globals so done() can read them per thread.
function M.count(status, body)
  if status < 200 or status > 299 then
    bad = (bad or 0) + 1
    if not bad_sample then
      bad_sample = tostring(status) .. " " .. string.sub(string.gsub(body or "", "%s+", " "), 1, 300)
    end
  end
end

local function sum(name)
  local total = 0
  for _, t in ipairs(threads) do
    local v = t:get(name)
    if type(v) == "number" then total = total + v end
  end
  return total
end

-- done(summary, latency, requests): print the SUMMARY line, plus the sum over threads of
-- each global named in `extra` (counters kept by the script), and one SAMPLE if any.
function M.done(summary, latency, extra)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local line = string.format(
    "SUMMARY requests=%d secs=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout)
  for _, name in ipairs(extra or {}) do
    line = line .. string.format(" %s=%d", name, sum(name))
  end
  io.write(line .. "\n")
  for _, t in ipairs(threads) do
    local s = t:get("bad_sample")
    if s then
      io.write("SAMPLE " .. s .. "\n")
      break
    end
  end
end

-- application/x-www-form-urlencoded value (RFC 3986 unreserved characters kept).
function M.urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Base64 (standard alphabet, padded), for HTTP Basic credentials.
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

-- HTTP Basic: RFC 6749 §2.3.1 form-urlencodes the id and secret before base64.
function M.basic(id, secret)
  return "Basic " .. M.base64(M.urlencode(id) .. ":" .. M.urlencode(secret))
end

return M
