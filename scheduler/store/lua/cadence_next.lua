-- next_ms(after, first, step, last): a library function, joined in front of the scripts
-- that use it (scheduler.store.scripts).
--
-- The next occurrence of a cadence strictly after the instant `after`.
--
-- Arguments:
--   after  number  epoch µs; the occurrence returned is strictly later
--   first  number  the cadence's first occurrence, epoch µs
--   step   number  µs between occurrences; 0 for a one-shot job (no next occurrence)
--   last   string  the cadence's last occurrence, epoch µs; '' when it has none
-- The cadence is Rule.grid_us (scheduler.domain.planning.cadence), stored in a job's hash
-- as "gen|first µs|step µs|last µs or empty|action type" (scheduler.domain.cadence.Cadence
-- behind the gen).
--
-- Returns: string, the occurrence in epoch ms; '' when there is none.
--
-- Lua's numbers are doubles: epoch µs stay far below 2^53, so the products are exact,
-- and the loops correct the quotient's rounding by a step at most.
local function next_ms(after, first, step, last)
  if step == 0 then return '' end
  local at = first
  if after >= first then
    local k = math.floor((after - first) / step)
    while first + k * step <= after do k = k + 1 end
    while k > 0 and first + (k - 1) * step > after do k = k - 1 end
    at = first + k * step
  end
  if last ~= '' and at > tonumber(last) then return '' end
  return string.format('%d', math.floor(at / 1000))
end
