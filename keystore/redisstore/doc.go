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
// Every command touches one key, or keys of one slot (a record and its
// index entry), and the only transactions (WATCH, MULTI, EXEC) are on the
// keys of one slot, so the layout works unchanged on Redis Cluster: no
// cross-slot commands, and one script of one key (the replay counter's
// INCR and PEXPIREAT, counter.go).
//
//	<prefix>key:<kid>        keystore.EncodeRecord bytes; kid in canonical
//	                         form (lower-case, hyphenated)
//	<prefix>ix:{<tag>}       the KIDs of the records in one slot: a shard
//	                         of the key index (sorted set)
//	<prefix>asset:<asset>    sorted set of the KIDs of one asset
//	<prefix>meta:<name>      a meta value, e.g. <prefix>meta:kek-check/k1
//	<prefix>mx:{<tag>}       the names of the meta values in one slot
//	<prefix>exp:<name>       an expiring value (idempotency keys), with a TTL
//	<prefix>sync:{<tag>}     a counter each waiting write increments (WAIT)
//
// The key index is sharded by slot: the entry of a record lives in the
// shard whose hash tag puts it in the record's own slot (slotTags fixes,
// for each of the 16,384 slots, the tag that lands there; the table is part
// of the layout). So a record and its entry are on the same node and are
// written in the same round trip, and no write depends on a key elsewhere:
// on Cluster, losing a master affects only the records of its slots, and
// only until a replica takes over. List merges the shards (see List). Meta
// names are sharded the same way. Versions before the shards kept one
// sorted set, <prefix>index (and <prefix>metanames); MigrateIndex moves
// their entries into the shards.
//
// Index members all have score 0 and are the KID as 32 lower-case hex
// digits (or the meta name), so Redis' lexicographic order is the KIDs'
// byte order and List and ListAsset page with ZRANGE ... BYLEX.
//
// Create and CreateBatch write the record with SET NX (of two concurrent
// creates exactly one wins, and a stored record is never overwritten) and
// its index entry with ZADD, in one pipeline, then the asset entries.
// Update, Delete, Link and Unlink are optimistic transactions on the
// record's key: WATCH, GET, MULTI, SET or DEL (and the ZREM of its index
// entry), EXEC, tried again when another writer got in between; Link then
// adds the asset's index entry (ZADD), Unlink removes it (ZREM, best
// effort, as Delete). No record is given a TTL.
//
// # Replicated acknowledgements
//
// With Options.WaitReplicas (or WaitAuto) every write of a key, a meta or
// an expiring value (a create, an update, a delete, a link) is followed, on
// its own connection, by an INCR of the sync counter of its slot and WAIT:
// the write counts only when that many replicas confirmed it (WAIT counts
// the replicas that hold everything the connection wrote; the INCR makes
// that cover a record a retry finds already stored). Fewer in time is
// keystore.ErrNotReplicated. WaitAOF uses WAITAOF (Redis 7.2 or later): the
// master's own append-only file, fsynced, as well. The token use counters
// and the blobs do not wait.
//
// # Index consistency
//
// A record and its key index entry are written together; the asset
// entries live in other slots and are written after. The indexes may lag
// the records in two ways, both repaired without operator action:
//
//   - A record whose asset entries (or, if the connection broke between
//     them, index entry) were not written: its Create or CreateBatch result
//     is keystore.ErrUnavailable although the record is stored, and
//     ListAsset (or List) does not show it. Sending the same record (or
//     batch) again answers keystore.ErrExists and writes the entries of
//     the stored record: the retry that an ErrUnavailable calls for heals
//     the index.
//   - An entry whose record is gone (Delete removes the asset entries
//     after the record, best effort): List and ListAsset skip such
//     members, still fill the page, and remove them.
//
// # Required Redis settings for production
//
// CheckDurability reads them from every master and reports those that can
// lose an acknowledged key (the server logs them, every minute):
//
//   - Durability: a Create that returned nil must survive a Redis crash.
//     Run with "appendonly yes" and "appendfsync always" (or WaitAOF), and
//     with replicas let writes wait for them (WaitAuto, the server's
//     default). "appendfsync everysec" can lose the last second of created
//     keys, even with replicas (they resync from a master that restarted);
//     RDB snapshots alone can lose much more.
//   - "maxmemory-policy noeviction": any evicting policy silently deletes
//     keys, which then look missing (404) instead of failing loudly. A full
//     Redis (OOM, or MISCONF when it cannot persist) answers
//     keystore.ErrFull.
//   - Redis 6.2 or later (ZRANGE ... BYLEX LIMIT); 7.2 for WaitAOF.
//   - Authentication (requirepass or an ACL user) and, across untrusted
//     networks, TLS (rediss://). An ACL user needs these commands on the
//     keys under its prefix: "~kd:* &kd:* +get +set +del +zadd +zrem
//     +zrange +zcard +incr +wait +info +watch +unwatch +multi +exec +ping
//     +publish +subscribe +evalsha +eval +pexpireat +bgrewriteaof"
//     (publish and subscribe carry the key cache invalidations on the
//     channel <prefix>changes; the script and its commands count token
//     uses, <prefix>uses:<sha-256 hex>, expiring with the token;
//     bgrewriteaof runs after purges, compact.go, and may be refused: it is
//     then only a warning; +info lets WaitAuto see the replicas: without it
//     every write waits for one); +waitaof with WaitAOF; "+config|get" lets
//     CheckDurability read the settings (without it they are reported
//     unchecked); on Redis Cluster also
//     "+cluster|slots", and "+command" to spare the log a go-redis
//     warning. A user without +zadd can still store records, but every
//     create then answers keystore.ErrUnavailable (index not written).
//
// # Timeouts and errors
//
// Every call is bounded: by the caller's context (go-redis runs with
// ContextTimeoutEnabled; an auto-pipelined read waits for its batch only
// until its context ends), by the dial, read and write timeouts in
// Options, and by at most one retry. On Cluster the slot map is reloaded
// every SlotReloadInterval and at once when a node refuses connections. Errors are translated here, at the boundary:
// a missing key is keystore.ErrNotFound; an unreachable, slow, loading,
// failing-over or read-only Redis is keystore.ErrUnavailable (transient:
// retry later), and so are an index write that failed and an Update or
// Delete that lost its transaction to other writers txAttempts times in a
// row; OOM and MISCONF are keystore.ErrFull (which is ErrUnavailable); a
// write the replicas did not confirm is keystore.ErrNotReplicated; a failed
// SET NX is keystore.ErrExists. A canceled context
// stays context.Canceled. Anything else (a wrong password, say) is returned
// wrapped as it is.
//
// go-redis stays inside this package: no go-redis type appears in its
// exported API, and callers never import go-redis to inspect an error. This
// package imports only keystore among our packages.
package redisstore
