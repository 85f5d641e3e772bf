-- POST one fixed JSON body, read once from the file named by the first script argument
-- (`wrk ... -s post.lua <url> -- <body.json>`) or by $BENCH_BODY_FILE.
-- Headers other than Content-Type (e.g. X-API-Key) are passed with wrk's own -H flag.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
   local path = args[1] or os.getenv("BENCH_BODY_FILE")
   if path == nil then
      error("post.lua: give the body file as `-- <path>` or BENCH_BODY_FILE")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
end
