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
// Every command touches one key, and the only transactions (WATCH, MULTI,
// EXEC) are on one key, so the layout works unchanged on Redis Cluster: no
// multi-key commands, and one script of one key (the replay counter's
// INCR and PEXPIREAT, counter.go).
//
//	<prefix>key:<kid>      keystore.EncodeRecord bytes; kid in canonical
//	                       form (lower-case, hyphenated)
//	<prefix>index          sorted set of every stored KID
//	<prefix>asset:<asset>  sorted set of the KIDs of one asset
//	<prefix>meta:<name>    a meta value, e.g. <prefix>meta:kek-check/k1
//
// Index members all have score 0 and are the KID as 32 lower-case hex
// digits, so Redis' lexicographic order is the KIDs' byte order and List
// and ListAsset page with ZRANGE ... BYLEX. The global index is one key, on
// one Cluster node, of about 140 bytes of memory per stored key (on top of
// the record's own key).
//
// Create and CreateBatch write the record with SET NX (of two concurrent
// creates exactly one wins, and a stored record is never overwritten), and
// then its index entries with ZADD. Update, Delete, Link and Unlink are
// optimistic transactions on the record's key: WATCH, GET, MULTI, SET or
// DEL, EXEC, tried again when another writer got in between; Link then adds
// the asset's index entry (ZADD), Unlink removes it (ZREM, best effort, as
// Delete). No key is given a TTL.
//
// # Index consistency
//
// The index entries live in other slots than the record, so they are
// written by separate commands, after the record. The index may therefore
// lag the records in two ways, both repaired without operator action:
//
//   - A record whose index write failed: its Create or CreateBatch result
//     is keystore.ErrUnavailable although the record is stored, and List
//     and ListAsset do not show it. Sending the same record (or batch)
//     again answers keystore.ErrExists and writes the entries of the
//     stored record: the retry that an ErrUnavailable calls for heals the
//     index.
//   - An entry whose record is gone (Delete removes the entries after the
//     record, best effort): List and ListAsset skip such members, still
//     fill the page, and remove them.
//
// Records that predate the index (written by a version without List) are
// not listed until indexed. Sending their stored records through
// CreateBatch again indexes them; there is no reindexing command yet, and
// keystore.Keys.Import needs the key values to do it.
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
//   - Redis 6.2 or later (ZRANGE ... BYLEX LIMIT).
//   - Authentication (requirepass or an ACL user) and, across untrusted
//     networks, TLS (rediss://). An ACL user needs these commands on the
//     keys under its prefix: "~kd:* &kd:* +get +set +del +zadd +zrem
//     +zrange +watch +unwatch +multi +exec +ping +publish +subscribe
//     +evalsha +eval +incr +pexpireat +bgrewriteaof" (publish and
//     subscribe carry the key cache invalidations on the channel
//     <prefix>changes; the script and its commands count token uses,
//     <prefix>uses:<sha-256 hex>, expiring with the token; bgrewriteaof
//     runs after purges, compact.go, and may be refused: it is then only a
//     warning); on Redis Cluster also
//     "+cluster|slots", and "+command" to spare the log a go-redis
//     warning. A user without +zadd can still store records, but every
//     create then answers keystore.ErrUnavailable (index not written).
//
// # Timeouts and errors
//
// Every call is bounded: by the caller's context (go-redis runs with
// ContextTimeoutEnabled), by the dial, read and write timeouts in Options,
// and by at most one retry. Errors are translated here, at the boundary:
// a missing key is keystore.ErrNotFound; an unreachable, slow, loading,
// failing-over or read-only Redis is keystore.ErrUnavailable (transient:
// retry later), and so are an index write that failed and an Update or
// Delete that lost its transaction to other writers txAttempts times in a
// row; a failed SET NX is keystore.ErrExists. A canceled context
// stays context.Canceled. Anything else (a wrong password, say) is returned
// wrapped as it is.
//
// go-redis stays inside this package: no go-redis type appears in its
// exported API, and callers never import go-redis to inspect an error. This
// package imports only keystore among our packages.
package redisstore
