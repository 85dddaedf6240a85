-- wrk script: POST realistic 50-event tracker batches to /api/track/user-activity.
--
--   wrk -t1 -c50 -d15s -s post_batches.lua http://127.0.0.1:PORT -- API_KEY ORIGIN USERS EVENTS NONCE
--
-- EVENTS 0 sends the realistic mix of batch sizes (see batch_size()).
--
-- Every request is a fresh batch: a user picked at random out of USERS, EVENTS
-- events of the tracker's types (clicks, routes, heartbeats, page times,
-- custom events, form submits, visibility changes, a few errors) with
-- timestamps computed per request from os.time() so they are always within
-- the server's 24 h window, a sentAt, and a unique batchId so no batch is a
-- duplicate.  Sent as text/plain with an Origin, as navigator.sendBeacon does.
--
-- done() prints one line "BENCH_JSON {...}" with requests, status counts,
-- socket errors and latency percentiles (microseconds) for bench/ingest.py.

local api_key, origin, users, events_per_batch, nonce
local counter = 0
local fragments = {}
statuses = {}

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local routes = {
  "/dashboard", "/projects", "/projects/42", "/projects/42/settings", "/billing",
  "/billing/invoices", "/team", "/team/invite", "/reports/weekly", "/integrations/slack",
}
local elements = {
  {"button#save", "Save"}, {"a.nav-projects", "Projects"}, {"button.invite", "Invite"},
  {"button#export", "Export CSV"}, {"a.upgrade", "Upgrade plan"}, {"input#search", ""},
}

-- One event without its timestamp value: the request appends the number and "}".
local function fragment()
  local route = routes[math.random(#routes)]
  local r = math.random(100)
  local body
  if r <= 40 then
    local el = elements[math.random(#elements)]
    body = string.format('{"type":"click","element":"%s","text":"%s","route":"%s"', el[1], el[2], route)
  elseif r <= 55 then
    body = string.format('{"type":"route","route":"%s"', route)
  elseif r <= 70 then
    body = string.format('{"type":"heartbeat","route":"%s"', route)
  elseif r <= 80 then
    body = string.format('{"type":"page_time","duration":%d,"route":"%s"', math.random(500, 300000), route)
  elseif r <= 88 then
    body = string.format(
      '{"type":"custom","name":"report_exported","data":{"format":"csv","rows":%d,"filters":["active","q3"]},"route":"%s"',
      math.random(1, 5000), route)
  elseif r <= 93 then
    body = string.format('{"type":"form_submit","formId":"settings-form","route":"%s"', route)
  elseif r <= 98 then
    local states = {"visible", "hidden"}
    body = string.format('{"type":"visibility","state":"%s","route":"%s"', states[math.random(2)], route)
  else
    body = string.format(
      '{"type":"error","message":"TypeError: Cannot read properties of undefined (reading \'id\')",'
      .. '"source":"https://app.example.com/static/app.3f9a1c.js","stack":"TypeError: Cannot read properties'
      .. ' of undefined\\n    at renderRow (app.3f9a1c.js:1:4242)\\n    at Array.map (<anonymous>)","route":"%s"',
      route)
  end
  return body .. ',"timestamp":'
end

function init(args)
  thread_id = thread_id or 1  -- set by setup() in the main state
  api_key = args[1]
  origin = args[2]
  users = tonumber(args[3])
  events_per_batch = tonumber(args[4])
  nonce = args[5]
  math.randomseed(tonumber(nonce) % 1000003 * 64 + thread_id)
  for i = 1, 512 do
    fragments[i] = fragment()
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
  wrk.headers["Origin"] = origin
end

local tiers = {"free_trial", "free_trial", "free_trial", "free_trial", "free_trial", "free_trial",
               "paid", "paid", "paid", "enterprise"}

-- EVENTS = 0: the realistic mix of bench/_loadgen.py's MIX (issue 22): 35 % one
-- heartbeat, 40 % 2-5 events, 15 % 6-19, 10 % 20-50 (mean about 7).
local function batch_size()
  if events_per_batch > 0 then
    return events_per_batch
  end
  local r = math.random(100)
  if r <= 35 then
    return 1
  elseif r <= 75 then
    return math.random(2, 5)
  elseif r <= 90 then
    return math.random(6, 19)
  end
  return math.random(20, 50)
end

function request()
  counter = counter + 1
  local now = os.time() * 1000
  local n = batch_size()
  local user = math.random(users)
  local parts = {
    string.format(
      '{"apiKey":"%s","userId":"user-%d","userEmail":"user-%d@example.com","subscriptionTier":"%s",'
      .. '"sentAt":%.0f,"batchId":"b-%s-%d-%d","events":[',
      api_key, user, user, tiers[user % 10 + 1], now, nonce, thread_id, counter),
  }
  if n == 1 and events_per_batch == 0 then
    parts[#parts + 1] = string.format('{"type":"heartbeat","input":%d,"focused":true,"timestamp":%.0f}',
      math.random(0, 20), now)
  else
    for i = 1, n do
      local ts = string.format("%.0f", now - (n - i) * 200)
      parts[#parts + 1] = fragments[math.random(#fragments)] .. ts .. (i < n and "}," or "}")
    end
  end
  parts[#parts + 1] = "]}"
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for code, n in pairs(s) do
        counts[code] = (counts[code] or 0) + n
      end
    end
  end
  local status_json = {}
  for code, n in pairs(counts) do
    status_json[#status_json + 1] = string.format('"%d":%d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"statuses":{%s},'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes, table.concat(status_json, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
