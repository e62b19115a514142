# Docker Engine for the deployment cycle of `make test` (make up -> verify -> idempotence -> down).
# CI machines have no systemd: start dockerd in the background now, so it is ready when make test
# reaches the infra cycle. `make up` (role docker_engine) does the same on a fresh machine by itself.
# A runner with an engine already running (GitHub's) keeps it; docker.io is installed here, not through
# apt-packages.txt, so it never clashes with a preinstalled engine.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    apt-get install -y -q --no-install-recommends docker.io iptables >/dev/null
  fi
  start-stop-daemon --start --background --make-pidfile --pidfile /run/photomatrix-dockerd.pid \
    --output /var/log/photomatrix-dockerd.log --exec /usr/sbin/dockerd
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi
