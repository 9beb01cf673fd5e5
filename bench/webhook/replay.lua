-- wrk script for bench/webhook.sh: replays pre-signed deliveries.
--
--   wrk -t T -c C -d D --latency -s replay.lua URL -- BODIES T RATE READY
--
-- BODIES has one delivery a line, "sha256=HEX<TAB>BODY" (bodies.py). Thread
-- k of T sends lines k, k+T, k+2T, ... in order, each once; a thread that
-- runs out starts its slice again (counted as "repeats": those deliveries
-- are duplicates). Every request is formatted once, before the run. With
-- RATE (requests/s, all threads together), each thread holds its requests
-- to a schedule of RATE/T per second (a connection waits for the next
-- slot; wrk's latency starts when the request is written): the paced run.
-- With RATE 0, each connection sends its next request as soon as it has an
-- answer. wrk starts each thread as soon as its init is done and starts its
-- clock after the last one's, so a thread waits before its first request
-- until the last thread has created the file READY: no thread sends
-- outside the time wrk divides by. At the end one line "WRK {json}" sums
-- it up (latencies in ms).
local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

local reqs, n, i = {}, 0, 0
repeats, sent = 0, 0

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
int usleep(unsigned int usec);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

function init(args)
   local file, nthreads, rate = args[1], tonumber(args[2]), tonumber(args[3])
   ready = args[4]
   if rate > 0 then
      local interval, slots, t0 = 1000 * nthreads / rate, 0, nil
      function delay() -- before each request: wait for its slot
         start()
         local now = now_ms()
         t0 = t0 or now
         slots = slots + 1
         local wait = t0 + slots * interval - now
         return wait > 0 and math.floor(wait) or 0
      end
   end
   local k = 0
   for line in io.lines(file) do
      if k % nthreads == id - 1 then
         local tab = string.find(line, "\t", 1, true)
         n = n + 1
         reqs[n] = wrk.format("POST", nil, {
            ["Content-Type"] = "application/json",
            ["User-Agent"] = "facebookexternalua",
            ["X-Hub-Signature-256"] = string.sub(line, 1, tab - 1),
         }, string.sub(line, tab + 1))
      end
      k = k + 1
   end
   if n == 0 then error("no deliveries for thread " .. id .. " in " .. file) end
   -- wrk calls thread 1's request() once more, before the other threads
   -- exist, to look at what it returns: that call must not wait
   calls_before_gate = id == 1 and 1 or 0
   if id == nthreads then io.open(ready, "w"):close() end
end

local started = false
function start() -- once, before the thread's first request
   if started then return end
   started = true
   while true do
      local f = io.open(ready, "r")
      if f then f:close() return end
      ffi.C.usleep(1000)
   end
end

function request()
   if calls_before_gate > 0 then
      calls_before_gate = calls_before_gate - 1
   else
      start()
   end
   i = i + 1
   if i > n then
      i = 1
      repeats = repeats + 1
   end
   sent = sent + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local rep, issued = 0, 0
   for _, t in ipairs(threads) do
      rep = rep + t:get("repeats")
      issued = issued + t:get("sent")
   end
   local e = summary.errors
   io.write(string.format(
      'WRK {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
      '"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"timeout":%d,"issued":%d,"slice_repeats":%d}\n',
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, e.status, e.connect, e.read,
      e.write, e.timeout, issued, rep))
end
