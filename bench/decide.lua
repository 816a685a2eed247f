-- wrk script for bench/bench.py: POST /v1/decisions with a unique order id per request.
--
--   wrk -t2 -c32 -d10s --timeout 10s --latency -s bench/decide.lua http://127.0.0.1:PORT -- KEY ACCOUNTS RUNID
--
-- order id: RUNID-<wrk thread>-<counter> (unique across threads and runs); customer C00001..C<ACCOUNTS>
-- drawn uniformly, sale group SG01; amount "1.00".."99.99". The summary is printed as one JSON line
-- starting with BENCH_JSON (latencies in microseconds; status = responses with status >= 400).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  key = args[1]
  accounts = tonumber(args[2])
  run = args[3]
  counter = 0
  math.randomseed(os.time() * 1000 + tid * 7919)
  headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  local customer = math.random(1, accounts)
  local cents = math.random(100, 9999)
  local body = string.format(
    '{"order_id":"%s-%d-%d","customer_code":"C%05d","sale_group_code":"SG01","amount":"%d.%02d"}',
    run, tid, counter, customer, math.floor(cents / 100), cents % 100)
  return wrk.format("POST", "/v1/decisions", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
