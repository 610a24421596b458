#!/bin/bash
set -e
mkdir -p /var/run/postgresql && chown postgres /var/run/postgresql
mkdir -p /tmp/etcd && chown postgres /tmp/etcd
for i in 1 2 3; do
  c=$((2379 + (i-1)*10)); p=$((2380 + (i-1)*10))
  su postgres -s /bin/bash -c "nohup etcd --name e$i --data-dir /tmp/etcd/e$i --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster e1=http://127.0.0.1:2380,e2=http://127.0.0.1:2390,e3=http://127.0.0.1:2400 --initial-cluster-state new --initial-cluster-token rec > /tmp/etcd/e$i.log 2>&1 &"
done
sleep 3
for i in 1 2; do
cat > /tmp/p$i.yml <<Y
scope: main
namespace: /pgtopo/rec/
name: pg$i
restapi:
  listen: 127.0.0.1:800$i
  connect_address: 127.0.0.1:800$i
  authentication: {username: patroni, password: secret}
etcd3:
  hosts: 127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 2
    retry_timeout: 10
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {wal_log_hints: "on"}
  initdb: [{encoding: UTF8}, {locale: C.UTF-8}, data-checksums]
postgresql:
  listen: 127.0.0.1:543$i
  connect_address: 127.0.0.1:543$i
  data_dir: /tmp/pgdata$i
  bin_dir: /usr/lib/postgresql/17/bin
  pgpass: /tmp/pgpass$i
  authentication:
    superuser: {username: postgres, password: su}
    replication: {username: replicator, password: rep}
    rewind: {username: rewinder, password: rw}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
tags:
  failover_priority: $((3 - i))
  nofailover: false
Y
chown postgres /tmp/p$i.yml
done
