# Unicorn for the benchmark: @WORKERS@ workers on loopback, the app loaded once in the
# master (as runicorn builds its app before fork), no access log.
worker_processes @WORKERS@
listen "127.0.0.1:@PORT@", backlog: 1024
preload_app true
pid "@DIR@/unicorn.pid"
stderr_path "@DIR@/unicorn.log"
stdout_path "@DIR@/unicorn.log"
