-- Admits one request of a gateway key, atomically: reads its counts, decides, and counts the
-- request only if admitted. The arithmetic is gateway-core's `governance::window` (`estimate`,
-- `admits`) written in the same order of operations, so both compute the same doubles and
-- decide alike (the crate's tests check it case by case).
--
-- KEYS[1] requests in the current window    KEYS[2] requests in the previous window
-- KEYS[3] tokens in the current window      KEYS[4] tokens in the previous window
-- KEYS[5] spend in this budget period, micro-USD
-- ARGV[1] how far into the current window, in [0, 1)
-- ARGV[2] requests per window, ARGV[3] tokens per window, ARGV[4] budget in whole micro-USD;
--         each '' when the key has no such limit
-- ARGV[5] seconds a window's request count is kept (two windows: it is read as the previous one)
--
-- Returns {verdict, requests previous, requests current, tokens previous, tokens current, spend}:
-- the counts decided on, before the request is counted (what core's `rules::answer` takes).
-- Verdict: 0 admitted, 1 over budget, 2 over tokens, 3 over requests (checked in that order,
-- as core's `rules::refusal` does).

local elapsed = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])

local function count(key)
  return tonumber(redis.call('GET', key) or '0')
end

-- window::estimate
local function estimate(previous, current)
  return previous * (1 - elapsed) + current
end

-- window::admits
local function admits(previous, current, limit, cost)
  if cost == 0 then
    return estimate(previous, current) < limit
  end
  return estimate(previous, current) + cost <= limit
end

local requests_previous, requests_current = 0, 0
if rpm then
  requests_previous = count(KEYS[2])
  requests_current = count(KEYS[1])
end
local tokens_previous, tokens_current = 0, 0
if tpm then
  tokens_previous = count(KEYS[4])
  tokens_current = count(KEYS[3])
end
local spend = 0
if budget then
  spend = count(KEYS[5])
end

local verdict = 0
if budget and not (spend < budget) then
  verdict = 1
elseif tpm and not admits(tokens_previous, tokens_current, tpm, 0) then
  verdict = 2
elseif rpm and not admits(requests_previous, requests_current, rpm, 1) then
  verdict = 3
elseif rpm then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end

return {verdict, requests_previous, requests_current, tokens_previous, tokens_current, spend}
