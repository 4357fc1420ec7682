// Package redisstore is the keystore.Store on Redis, for running several
// keydelivery instances over one shared store. It works against a single
// Redis server, a Sentinel-managed primary, or Redis Cluster (see
// Options.URL).
//
// # Trust boundary
//
// Redis is untrusted storage. It only ever holds what keystore.EncodeRecord
// produces: key metadata in the clear and key material sealed by the
// keystore barrier (AES-256-GCM under a KEK that never reaches Redis). This
// package never sees key material in the clear and never puts stored values
// or the Redis password into errors or logs; use Store.Redacted to log the
// URL. A record read back must name the key it was stored under: one copied
// to another key's slot in Redis fails with keystore.ErrSealed rather than
// being delivered as the other key.
//
// # Layout
//
// One Redis key per record, so every command touches exactly one key and
// the layout works unchanged on Redis Cluster (no multi-key commands, no
// transactions, no scripts):
//
//	<prefix>key:<kid>    keystore.EncodeRecord bytes; kid in canonical form
//	                     (lower-case, hyphenated)
//	<prefix>meta:<name>  a meta value, e.g. <prefix>meta:kek-check/k1
//
// Create is SET key value NX: of two concurrent creates exactly one wins,
// and a stored record is never overwritten. Nothing is ever deleted or
// given a TTL.
//
// # Required Redis settings for production
//
//   - Durability: a Create that returned nil must survive a Redis crash.
//     Either run with "appendonly yes" and "appendfsync always", or
//     replicate and have writes reach the replicas before they count
//     (WAIT; this store does not send it, so plain asynchronous
//     replication can lose the last writes in a failover). The default
//     "appendfsync everysec" can lose the last second of created keys;
//     RDB snapshots alone can lose much more.
//   - "maxmemory-policy noeviction": any evicting policy silently deletes
//     keys, which then look missing (404) instead of failing loudly.
//   - Authentication (requirepass or an ACL user) and, across untrusted
//     networks, TLS (rediss://). An ACL user needs only GET, SET and PING
//     on the keys under its prefix (e.g. "~kd:* +get +set +ping"); on
//     Redis Cluster also "+cluster|slots", and "+command" to spare the log
//     a go-redis warning.
//
// # Timeouts and errors
//
// Every call is bounded: by the caller's context (go-redis runs with
// ContextTimeoutEnabled), by the dial, read and write timeouts in Options,
// and by at most one retry. Errors are translated here, at the boundary:
// a missing key is keystore.ErrNotFound; an unreachable, slow, loading,
// failing-over or read-only Redis is keystore.ErrUnavailable (transient:
// retry later); a failed SET NX is keystore.ErrExists. A canceled context
// stays context.Canceled. Anything else (a wrong password, say) is returned
// wrapped as it is.
//
// go-redis stays inside this package: no go-redis type appears in its
// exported API, and callers never import go-redis to inspect an error. This
// package imports only keystore among our packages.
package redisstore
