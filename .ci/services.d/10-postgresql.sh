# PostgreSQL from Debian's packages, for the ERP suite's second database backend.
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q online; then
  pg_ctlcluster "${pg_version}" main start
fi
for _ in $(seq 1 30); do pg_isready -q && break; sleep 1; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='erp'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE erp LOGIN PASSWORD 'erp-ci' CREATEDB\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='erp_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O erp erp_test"
export ERP_TEST_POSTGRES_URL="postgresql+psycopg://erp:erp-ci@127.0.0.1:5432/erp_test"
