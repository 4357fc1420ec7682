package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/keystore"
)

// Sizes of the round trips a call makes.
const (
	// pipeMax is the most commands (for ZADD: members) sent in one
	// pipeline. go-redis gives a whole pipeline one ReadTimeout for all its
	// replies and one WriteTimeout for all its requests, so a pipeline must
	// stay small enough to cross the network, and be answered by a busy
	// (or fsyncing) Redis, well within them: 1,000 records are about 300
	// KB. A 100,000-key import is then 100 pipelines of SET NX and about as
	// many of ZADD, a few milliseconds of round trips in all on a local
	// network; keystore.Keys.Import keeps up to two chunks in flight
	// (importWorkers: one on 2 processors), so Redis is seldom idle.
	pipeMax = 1000
	// zaddMax is the most members one ZADD carries, so that no single
	// command blocks Redis for long.
	zaddMax = 1000
	// listChunk is the most index members List and ListAsset read (and
	// records they GET) per round trip.
	listChunk = 1000
)

// The index kinds: sorted sets sharded by slot (see shardOf).
const (
	keyIndex  = "ix" // the KIDs of the records
	metaIndex = "mx" // the names of the meta values
)

// shardOf is the shard of the index kind that the entry of key goes to:
// <prefix><kind>:{tag}, where tag puts the shard in key's own slot. So an
// entry lies on the node of its record, is written in the same round trip,
// and losing a node loses (or makes unreachable) only the entries of the
// records on it. There is one shard per slot: 16,384.
func (s *Store) shardOf(kind, key string) string {
	return s.prefix + kind + ":" + slotTag(keySlot(key))
}

// shardsOf returns every shard of the index kind that can hold entries:
// one per slot, or only one when the prefix has a hash tag (then every key
// of the store is in its slot).
func (s *Store) shardsOf(kind string) []string {
	if _, tagged := hashTag(s.prefix); tagged {
		return []string{s.shardOf(kind, s.prefix)}
	}
	out := make([]string, numSlots)
	for slot := range out {
		out[slot] = s.prefix + kind + ":" + slotTag(slot)
	}
	return out
}

// legacyIndexName and legacyMetaNames are the single sorted sets that
// versions before the sharded index kept; MigrateIndex moves them.
func (s *Store) legacyIndexName() string { return s.prefix + "index" }
func (s *Store) legacyMetaNames() string { return s.prefix + "metanames" }

// assetName is the sorted set of the KIDs of one asset.
func (s *Store) assetName(asset string) string { return s.prefix + "asset:" + asset }

// member is a KID as an index member: 32 lower-case hex digits, so that
// Redis' lexicographic order of members is the byte order of KIDs.
func member(id keystore.KeyID) string { return hex.EncodeToString(id[:]) }

// parseMember reverses member. Anything else (upper case, hyphens, another
// length) is not a member this package wrote, and is skipped by callers.
func parseMember(m string) (keystore.KeyID, bool) {
	var id keystore.KeyID
	if len(m) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(m)); err != nil || member(id) != m {
		return id, false
	}
	return id, true
}

// decodeAt decodes the record stored under id. Redis is untrusted: a
// record that names another KID than the slot it is stored in was moved
// there and is refused with keystore.ErrSealed.
func decodeAt(id keystore.KeyID, b []byte) (keystore.Record, error) {
	r, err := keystore.DecodeRecord(b)
	if err != nil {
		return keystore.Record{}, err
	}
	if r.ID != id {
		return keystore.Record{}, fmt.Errorf("%w: stored record names key %s", keystore.ErrSealed, r.ID)
	}
	return r, nil
}

// isReply reports whether err is an answer from Redis (the command was
// received and refused), as opposed to a failure to talk to Redis, after
// which the rest of a connection's replies are lost too.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// indexEntry is one member of an asset's set: owner is the position in a
// batch of the record the entry is written for.
type indexEntry struct {
	id    keystore.KeyID
	asset string
	owner int
}

// entries returns the asset entries of a record.
func entries(id keystore.KeyID, assets []string, owner int) []indexEntry {
	es := make([]indexEntry, 0, len(assets))
	for _, a := range assets {
		es = append(es, indexEntry{id: id, asset: a, owner: owner})
	}
	return es
}

func (s *Store) entryKey(e indexEntry) string { return s.assetName(e.asset) }

// belongs reports whether the stored record r still calls for entry e.
func belongs(r keystore.Record, e indexEntry) bool { return slices.Contains(r.Assets, e.asset) }

// Create implements keystore.Store: a batch of one (SET NX, then the index
// entries). See CreateBatch.
func (s *Store) Create(ctx context.Context, r keystore.Record) error {
	errs, err := s.createBatch(ctx, []keystore.Record{r})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("redisstore: create %s: %w", r.ID, err)
	}
	return nil
}

// CreateBatch implements keystore.Store. Each record is written with SET
// NX, and its KID to the index shard of its slot with ZADD, in the same
// round trip on the same connection (writeUnits: pipelined, pipeMax records
// per round trip, grouped by cluster node; then WAIT when writes wait for
// replicas). Then the asset entries, ZADD grouped per asset (zaddMax
// members each), pipelined: a batch of n records costs about n/pipeMax
// round trips per node, plus one per pipeMax asset entries.
//
// The ZADD of the KID is sent whatever SET NX answers, so sending a record
// again writes its index entry if an earlier attempt stored the record
// without it. Asset entries live in other slots: when their write fails,
// the record is stored but missing from ListAsset, and its result is
// keystore.ErrUnavailable, so the caller sends the batch again. The
// records already stored then answer keystore.ErrExists, and for every
// such record CreateBatch reads the stored record and writes its asset
// entries again (ZADD is idempotent): a resent batch heals them. The same
// holds when a lost reply made go-redis retry a SET NX that Redis had
// applied.
//
// A record whose ID is taken answers a *keystore.ExistsError with the
// record as stored, read by those same pipelined GETs, so that
// keystore.Keys.Import tells "unchanged" from "conflict" without a GET per
// key; one that is gone again or does not decode answers a plain
// keystore.ErrExists. A write the replicas did not confirm in time answers
// keystore.ErrNotReplicated (it is stored on the master; send it again).
//
// When no record got an answer (Redis down, a canceled context, a refused
// command on every record) CreateBatch returns that single error. After a
// connection failure part-way the records not yet sent answer an error
// wrapping the failure without being sent.
func (s *Store) CreateBatch(ctx context.Context, rs []keystore.Record) ([]error, error) {
	errs, err := s.createBatch(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("redisstore: create batch: %w", err)
	}
	for i, e := range errs {
		if e != nil {
			errs[i] = fmt.Errorf("redisstore: create %s: %w", rs[i].ID, e)
		}
	}
	return errs, nil
}

// createBatch is CreateBatch with bare errors; the callers add context.
func (s *Store) createBatch(ctx context.Context, rs []keystore.Record) ([]error, error) {
	us := make([]*unit, len(rs))
	for i, r := range rs {
		for _, a := range r.Assets {
			if a == "" {
				return nil, fmt.Errorf("key %s: %w: empty", r.ID, keystore.ErrInvalidAsset)
			}
		}
		b, err := keystore.EncodeRecord(r)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", r.ID, err)
		}
		key := s.keyName(r.ID)
		us[i] = &unit{key: key, value: b, shard: s.shardOf(keyIndex, key), member: member(r.ID)}
	}
	errs := make([]error, len(rs))
	if len(rs) == 0 {
		return errs, nil
	}
	// 1. The records and their index entries. A KID repeated in the batch
	// answers ErrExists the second time: units of one slot go in order on
	// one connection.
	if err := s.writeUnits(ctx, us); err != nil {
		return nil, err
	}
	for i, u := range us {
		errs[i] = u.err
	}

	// 2. The asset entries: of the records created now, and of the stored
	// records that answered ErrExists (healing an asset write that failed
	// before).
	var es []indexEntry
	var existing []int
	for i, err := range errs {
		switch {
		case err == nil:
			es = append(es, entries(rs[i].ID, rs[i].Assets, i)...)
		case errors.Is(err, keystore.ErrExists) && !errors.Is(err, keystore.ErrNotReplicated):
			existing = append(existing, i)
		}
	}
	heal, err := s.storedEntries(ctx, rs, existing, func(i int, stored keystore.Record) {
		errs[i] = &keystore.ExistsError{ID: rs[i].ID, Stored: stored}
	})
	for _, i := range existing {
		if err != nil {
			errs[i] = indexError(err)
		}
	}
	es = append(es, heal...)
	s.addIndex(ctx, es, func(owner int, err error) {
		if errs[owner] == nil || errors.Is(errs[owner], keystore.ErrExists) {
			errs[owner] = indexError(err)
		}
	})
	return errs, nil
}

// indexError is the result of a record whose index entries could not be
// written: transient, and healed by sending the same record again.
func indexError(err error) error {
	if errors.Is(err, keystore.ErrUnavailable) {
		return fmt.Errorf("record stored but index not written, send it again: %w", err)
	}
	return fmt.Errorf("%w: record stored but index not written, send it again: %w", keystore.ErrUnavailable, err)
}

// storedEntries reads the stored records of rs[i] for i in which, pipelined,
// hands each one that decodes to found, and returns their index entries. A
// record that is gone again, does not decode or names another KID gets
// none: there is nothing to list (and its result stays a plain
// keystore.ErrExists). The error is that of the first failed read; the
// caller then treats every record in which as not healed.
func (s *Store) storedEntries(ctx context.Context, rs []keystore.Record, which []int, found func(i int, stored keystore.Record)) ([]indexEntry, error) {
	var es []indexEntry
	for start := 0; start < len(which); start += pipeMax {
		chunk := which[start:min(start+pipeMax, len(which))]
		gets := make([]*redis.StringCmd, len(chunk))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range chunk {
				gets[j] = p.Get(ctx, s.keyName(rs[i].ID))
			}
			return nil
		})
		for j, i := range chunk {
			b, err := gets[j].Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, translate(err)
			}
			if r, err := decodeAt(rs[i].ID, b); err == nil {
				es = append(es, entries(r.ID, r.Assets, i)...)
				found(i, r)
			}
		}
	}
	return es, nil
}

// zadd is one ZADD of the members of some index entries to one index key.
type zadd struct {
	key    string
	es     []indexEntry
	cmd    *redis.IntCmd
	weight int
}

// addIndex writes es: one ZADD per index key (at most zaddMax members
// each, score 0), pipelined (at most pipeMax members per pipeline). For
// each entry whose ZADD failed or was not sent after a connection failure
// it calls fail with the entry's owner.
func (s *Store) addIndex(ctx context.Context, es []indexEntry, fail func(owner int, err error)) {
	byKey := map[string][]indexEntry{}
	var keys []string
	for _, e := range es {
		k := s.entryKey(e)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], e)
	}
	var zs []*zadd
	for _, k := range keys {
		for chunk := range slices.Chunk(byKey[k], zaddMax) {
			zs = append(zs, &zadd{key: k, es: chunk, weight: len(chunk)})
		}
	}
	var broken error
	for start := 0; start < len(zs); {
		end, weight := start, 0
		for end < len(zs) && (end == start || weight+zs[end].weight <= pipeMax) {
			weight += zs[end].weight
			end++
		}
		batch := zs[start:end]
		start = end
		if broken != nil {
			for _, z := range batch {
				for _, e := range z.es {
					fail(e.owner, fmt.Errorf("not sent after an earlier failure: %w", broken))
				}
			}
			continue
		}
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, z := range batch {
				members := make([]redis.Z, len(z.es))
				for i, e := range z.es {
					members[i] = redis.Z{Score: 0, Member: member(e.id)}
				}
				z.cmd = p.ZAdd(ctx, z.key, members...)
			}
			return nil
		})
		for _, z := range batch {
			err := z.cmd.Err()
			if err == nil {
				continue
			}
			terr := translate(err)
			if !isReply(err) {
				broken = terr
			}
			for _, e := range z.es {
				fail(e.owner, terr)
			}
		}
	}
}

// unindex removes index entries whose record is gone (ZREM), best effort.
// A record of the same KID may have been created again meanwhile, its
// ZADD landing before this ZREM; so afterwards unindex reads the records
// again and writes back the entries of those that exist now and still call
// for them. Since a Create writes its record before its entries, either
// that read sees the new record or the Create's ZADD comes after the ZREM:
// an entry of a live record is never lost this way. It returns the first
// error; callers may ignore it, since List and ListAsset skip (and remove)
// entries whose record is gone.
func (s *Store) unindex(ctx context.Context, es []indexEntry) error {
	if len(es) == 0 {
		return nil
	}
	byKey := map[string][]any{}
	var keys []string
	for _, e := range es {
		k := s.entryKey(e)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], member(e.id))
	}
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ZRem(ctx, k, byKey[k]...)
		}
		return nil
	}); err != nil {
		return translate(err)
	}
	ids := map[keystore.KeyID]*redis.StringCmd{}
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range es {
			if ids[e.id] == nil {
				ids[e.id] = p.Get(ctx, s.keyName(e.id))
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return translate(err)
	}
	var back []indexEntry
	var first error
	for _, e := range es {
		b, err := ids[e.id].Bytes()
		if err != nil {
			if !errors.Is(err, redis.Nil) && first == nil {
				first = translate(err)
			}
			continue
		}
		if r, err := decodeAt(e.id, b); err == nil && belongs(r, e) {
			back = append(back, e)
		}
	}
	s.addIndex(ctx, back, func(_ int, err error) {
		if first == nil {
			first = err
		}
	})
	return first
}

// List implements keystore.Store from the key index shards (one per slot),
// merged in KID order. A page is found by range: every shard is asked,
// pipelined, for its members in [from, from+width) (ZRANGE BYLEX, at most
// limit each), where width is what should hold about twice limit KIDs at
// the store's size (KIDs are spread evenly: random UUIDs); a range that
// holds too few is followed by one twice as wide, and a shard that had more
// than limit members in it bounds what the round may return. So a page
// costs one or two rounds of one ZRANGE per shard, whatever the store's
// size, and the size is counted (ZCARD of every shard) at most every
// sizeMaxAge.
//
// The records of the members found are read in pipelines. A member whose
// record is gone (a Delete whose cleanup failed) is skipped and removed;
// one that is not a member this package writes is skipped. A record that
// does not decode or names another KID fails the call, as Get would.
//
// Every shard must answer: on Redis Cluster, List fails while a master is
// down (and until its replica took over), as the order of a page cannot
// be known without it.
func (s *Store) List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	out, err := s.list(ctx, from, limit)
	if err != nil {
		s.connectionFailed(err)
		return nil, fmt.Errorf("redisstore: list: %w", translate(err))
	}
	return out, nil
}

// sizeMaxAge is how long List trusts its count of the index's size, which
// only sets the width of the first range it asks for.
const sizeMaxAge = 10 * time.Second

// smallPage is the largest page List finds in one round over the whole
// key space, without counting the index first: each shard answers its
// first smallPage members, so this stays one member per shard (List of
// one key, to see whether the store holds any).
const smallPage = 1

func (s *Store) list(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Record, error) {
	shards := s.shardsOf(keyIndex)
	// The range asked for is [start, hi): start is a lex bound ("[member"
	// or "(member"), lo the KID it is at as a number, for the width.
	lo := new(big.Int).SetBytes(from[:])
	start := "[" + member(from)
	// width = 2^128 * want / n, so that about want KIDs fall in it. A
	// page of one asks for the whole range at once: every shard's first
	// member, the least of which is the page; the size need not be
	// counted.
	width := new(big.Int).Lsh(big.NewInt(1), 129)
	if limit > smallPage {
		n, err := s.indexSize(ctx, shards)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		width = new(big.Int).Lsh(big.NewInt(int64(2*limit+16)), 128)
		width.Div(width, big.NewInt(n))
	}
	var out []keystore.Record
	for {
		hi := new(big.Int).Add(lo, width)
		last := hi.Cmp(maxID) > 0 // the range reaches the end of the key space
		stop := "+"
		if !last {
			stop = "(" + lexMember(hi)
		}
		ids, bound, err := s.rangeShards(ctx, shards, start, stop, limit)
		if err != nil {
			return nil, err
		}
		recs, err := s.readLive(ctx, ids, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if len(out) >= limit {
			return out[:limit], nil
		}
		switch {
		case bound != "": // a shard was cut off: go on right after it
			start = "(" + bound
			if id, ok := parseMember(bound); ok {
				lo.SetBytes(id[:])
			}
		case last:
			return out, nil
		default:
			start, lo = "["+lexMember(hi), hi
			width.Lsh(width, 1)
		}
	}
}

// maxID is the largest KID as a number.
var maxID = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// lexMember is the index member of the KID n.
func lexMember(n *big.Int) string {
	var id keystore.KeyID
	n.FillBytes(id[:])
	return member(id)
}

// rangeShards returns, sorted, the KIDs of every shard's members between
// the lex bounds start and stop, each shard asked for at most limit. When
// a shard gave limit members, what lies after its last one is not known,
// so only the members up to the smallest such last one are returned, and
// bound is that member; else bound is "". Members that are not KIDs this
// package wrote are skipped.
func (s *Store) rangeShards(ctx context.Context, shards []string, start, stop string, limit int) ([]keystore.KeyID, string, error) {
	var bound string
	var all []string
	for chunk := range slices.Chunk(shards, pipeMax) {
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, sh := range chunk {
				cmds[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: sh, Start: start, Stop: stop, ByLex: true, Count: int64(limit)})
			}
			return nil
		})
		for _, c := range cmds {
			ms, err := c.Result()
			if err != nil {
				return nil, "", err
			}
			if len(ms) == limit && (bound == "" || ms[len(ms)-1] < bound) {
				bound = ms[len(ms)-1]
			}
			all = append(all, ms...)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	var ids []keystore.KeyID
	for _, m := range all {
		if bound != "" && m > bound {
			break
		}
		if id, ok := parseMember(m); ok {
			ids = append(ids, id)
		}
	}
	return ids, bound, nil
}

// indexSize is the number of members of the key index: counted (ZCARD of
// every shard, pipelined) at most every sizeMaxAge, or again when it was 0.
func (s *Store) indexSize(ctx context.Context, shards []string) (int64, error) {
	s.size.mu.Lock()
	n, at := s.size.n, s.size.at
	s.size.mu.Unlock()
	if n > 0 && time.Since(at) < sizeMaxAge {
		return n, nil
	}
	var total int64
	for chunk := range slices.Chunk(shards, pipeMax) {
		cmds := make([]*redis.IntCmd, len(chunk))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, sh := range chunk {
				cmds[i] = p.ZCard(ctx, sh)
			}
			return nil
		})
		for _, c := range cmds {
			v, err := c.Result()
			if err != nil {
				return 0, err
			}
			total += v
		}
	}
	s.size.mu.Lock()
	s.size.n, s.size.at = total, time.Now()
	s.size.mu.Unlock()
	return total, nil
}

// readLive reads the records of ids (in order, listChunk per pipeline)
// until it has want live ones; members whose record is gone are removed
// from their shard (best effort).
func (s *Store) readLive(ctx context.Context, ids []keystore.KeyID, want int) ([]keystore.Record, error) {
	var out []keystore.Record
	for start := 0; start < len(ids) && len(out) < want; {
		chunk := ids[start:min(start+listChunk, start+want-len(out)+8, len(ids))]
		start += len(chunk)
		gets := make([]*redis.StringCmd, len(chunk))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				gets[i] = p.Get(ctx, s.keyName(id))
			}
			return nil
		})
		var stale []keystore.KeyID
		for i, id := range chunk {
			b, err := gets[i].Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				stale = append(stale, id)
				continue
			case err != nil:
				return nil, err
			}
			if len(out) == want {
				continue
			}
			r, err := decodeAt(id, b)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", id, err)
			}
			out = append(out, r)
		}
		_ = s.dropStale(ctx, stale) // best effort; the next List tries again
	}
	return out, nil
}

// dropStale removes the index entries of ids, whose records are gone. A
// record of the same KID may have been created again meanwhile, its ZADD
// landing before this ZREM; so the record is read again after the ZREM
// (on the same node: the shard is in the record's slot) and the entry of
// one that exists now is written back.
func (s *Store) dropStale(ctx context.Context, ids []keystore.KeyID) error {
	if len(ids) == 0 {
		return nil
	}
	gets := make([]*redis.StringCmd, len(ids))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			key := s.keyName(id)
			p.ZRem(ctx, s.shardOf(keyIndex, key), member(id))
			gets[i] = p.Get(ctx, key)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return translate(err)
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if gets[i].Err() == nil {
				key := s.keyName(id)
				p.ZAdd(ctx, s.shardOf(keyIndex, key), redis.Z{Member: member(id)})
			}
		}
		return nil
	})
	return translate(err)
}

// scanNames returns the members of every shard of the index kind that
// start with prefix, sorted (ListMeta: the meta values are few).
func (s *Store) scanNames(ctx context.Context, kind, prefix string) ([]string, error) {
	var all []string
	for chunk := range slices.Chunk(s.shardsOf(kind), pipeMax) {
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, sh := range chunk {
				cmds[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: sh, ByLex: true, Start: "[" + prefix, Stop: "[" + prefix + "\xff"})
			}
			return nil
		})
		for _, c := range cmds {
			ms, err := c.Result()
			if err != nil {
				s.connectionFailed(err)
				return nil, translate(err)
			}
			all = append(all, ms...)
		}
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// ListAsset implements keystore.Store, like List on the asset's set. It
// reads the records too (in one pipeline per page), to skip and remove
// members whose record is gone, or was created again without the asset:
// an index cleanup that failed in Delete never shows.
func (s *Store) ListAsset(ctx context.Context, asset string, from keystore.KeyID, limit int) ([]keystore.KeyID, error) {
	var out []keystore.KeyID
	if asset == "" {
		return nil, nil
	}
	err := s.scanIndex(ctx, indexEntry{id: from, asset: asset}, limit, func(ids []keystore.KeyID, _ [][]byte) error {
		out = append(out, ids...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: list asset %s: %w", asset, err)
	}
	return out, nil
}

// scanIndex pages through the index of start.asset from start.id and
// hands page the live members (up to limit in all) with their stored
// records, until limit members were handed or the index ends.
func (s *Store) scanIndex(ctx context.Context, start indexEntry, limit int, page func([]keystore.KeyID, [][]byte) error) error {
	key := s.entryKey(start)
	lower := "[" + member(start.id)
	for limit > 0 {
		n := min(limit, listChunk)
		ms, err := s.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key, Start: lower, Stop: "+", ByLex: true, Count: int64(n)}).Result()
		if err != nil {
			return translate(err)
		}
		if len(ms) == 0 {
			return nil
		}
		lower = "(" + ms[len(ms)-1]
		ids := make([]keystore.KeyID, 0, len(ms))
		for _, m := range ms {
			if id, ok := parseMember(m); ok {
				ids = append(ids, id)
			}
		}
		gets := make([]*redis.StringCmd, len(ids))
		if len(ids) > 0 {
			_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, id := range ids {
					gets[i] = p.Get(ctx, s.keyName(id))
				}
				return nil
			})
		}
		live := ids[:0:0]
		var recs [][]byte
		var stale []indexEntry
		for i, id := range ids {
			b, err := gets[i].Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				stale = append(stale, indexEntry{id: id, asset: start.asset})
				continue
			case err != nil:
				return translate(err)
			}
			if start.asset != "" {
				// A record that decodes but is not of the asset was
				// created again after a Delete left its entry behind.
				if r, err := decodeAt(id, b); err == nil && !belongs(r, start) {
					stale = append(stale, indexEntry{id: id, asset: start.asset})
					continue
				}
			}
			live = append(live, id)
			recs = append(recs, b)
		}
		_ = s.unindex(ctx, stale) // best effort; the next List tries again
		if err := page(live, recs); err != nil {
			return err
		}
		limit -= len(live)
		if len(ms) < n {
			return nil
		}
	}
	return nil
}

// MigrateIndex moves the entries of the single sorted sets that versions
// before the sharded index kept (<prefix>index of every KID,
// <prefix>metanames of every meta name) into the shards of their slots:
// listChunk members at a time, each chunk added to its shards and then
// removed from the old set, so a migration cut off part-way goes on where
// it stopped, and the old set disappears (Redis removes an empty set) once
// it is done. Members that are not what this package wrote are dropped.
// A server runs it at startup and every minute, so the entries that
// servers of an older version add during a rolling upgrade move too; List
// does not read the old sets. It returns how many entries it moved.
func (s *Store) MigrateIndex(ctx context.Context) (int, error) {
	moved := 0
	for _, old := range []struct {
		set   string
		shard func(m string) (string, bool)
	}{
		{s.legacyIndexName(), func(m string) (string, bool) {
			id, ok := parseMember(m)
			return s.shardOf(keyIndex, s.keyName(id)), ok
		}},
		{s.legacyMetaNames(), func(m string) (string, bool) { return s.shardOf(metaIndex, s.metaName(m)), m != "" }},
	} {
		for {
			ms, err := s.c.ZRange(ctx, old.set, 0, listChunk-1).Result()
			if err != nil {
				return moved, fmt.Errorf("redisstore: migrate %s: %w", old.set, translate(err))
			}
			if len(ms) == 0 {
				break
			}
			_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, m := range ms {
					if shard, ok := old.shard(m); ok {
						p.ZAdd(ctx, shard, redis.Z{Member: m})
					}
				}
				return nil
			})
			if err != nil {
				return moved, fmt.Errorf("redisstore: migrate %s: %w", old.set, translate(err))
			}
			rem := make([]any, len(ms))
			for i, m := range ms {
				rem[i] = m
			}
			if err := s.c.ZRem(ctx, old.set, rem...).Err(); err != nil {
				return moved, fmt.Errorf("redisstore: migrate %s: %w", old.set, translate(err))
			}
			moved += len(ms)
		}
	}
	return moved, nil
}
