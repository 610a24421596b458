"""Patroni and etcd as they run: the REST API client (api), what it answers parsed into frozen
views (views), and the DCS members' health and quorum (etcd). Used by ha and observe; pgtopo never
decides anything Patroni decides (leader election, health checks, rejoin)."""
