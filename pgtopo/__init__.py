"""pgtopo: multi-region PostgreSQL topologies on one machine."""
