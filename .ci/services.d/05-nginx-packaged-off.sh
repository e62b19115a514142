# Debian's nginx is installed for the tests that start their own nginx on a free loopback port
# (tests/security/test_sslyze.py, the activation page's proxy test). When the package's install
# started its own daemon (no policy-rc.d on the CI host), stop it: ports 80/443 belong to the
# proxy of a stack `make up` deploys on this machine.
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
  echo "stopping the packaged nginx daemon (pid $(cat /run/nginx.pid))"
  nginx -s quit || true
fi
