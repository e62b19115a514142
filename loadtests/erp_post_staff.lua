-- wrk script for loadtests/bench_erp.py: every request registers a new employee with its own
-- Idempotency-Key, so POST /staff does its full work (insert Staff + User, code, idempotency, audit).
local run = os.getenv("BENCH_RUN") or "run"
local key = os.getenv("BENCH_KEY") or ""
local position = os.getenv("BENCH_POSITION") or "ENG"
local threads = 0
-- Realistic namesakes: logins collide and take suffixes, as in a real company.
local surnames = {"Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
  "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров"}
local names = {"Иван", "Пётр", "Олег", "Юрий", "Анна", "Мария", "Ольга", "Елена"}

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local id = string.format("%s-%d-%d", run, tid, counter)
  local body = string.format(
    '{"full_name":"%s %s","email":"load-%s@example.com","position_code":"%s",'
      .. '"rocketchat_user_id":"load%s","rocketchat_username":"load.%s"}',
    surnames[counter % #surnames + 1], names[(counter + tid) % #names + 1], id, position,
    (id:gsub("-", "")), id)
  return wrk.format("POST", "/api/bot/v1/staff", {
    ["Content-Type"] = "application/json",
    ["X-API-Key"] = key,
    ["Idempotency-Key"] = "bench-" .. id,
  }, body)
end
