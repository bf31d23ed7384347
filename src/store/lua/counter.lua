-- counter: the outcome counters named by KEYS (see counter_fn.lua, prepended).
return count_keys(1, 1)
