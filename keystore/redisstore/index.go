package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

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
	// network; keystore.Keys.Import keeps two chunks in flight, so Redis
	// is not idle meanwhile.
	pipeMax = 1000
	// zaddMax is the most members one ZADD carries, so that no single
	// command blocks Redis for long.
	zaddMax = 1000
	// listChunk is the most index members List and ListAsset read (and
	// records they GET) per round trip.
	listChunk = 1000
)

// indexName is the sorted set of every stored KID.
func (s *Store) indexName() string { return s.prefix + "index" }

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

// indexEntry is one member of one index: the KID in the global index
// (asset == "") or in an asset's set. owner is the position in a batch of
// the record the entry is written for.
type indexEntry struct {
	id    keystore.KeyID
	asset string
	owner int
}

// entries returns the index entries of a record: the global index and one
// per asset.
func entries(id keystore.KeyID, assets []string, owner int) []indexEntry {
	es := make([]indexEntry, 0, 1+len(assets))
	es = append(es, indexEntry{id: id, owner: owner})
	for _, a := range assets {
		es = append(es, indexEntry{id: id, asset: a, owner: owner})
	}
	return es
}

func (s *Store) entryKey(e indexEntry) string {
	if e.asset == "" {
		return s.indexName()
	}
	return s.assetName(e.asset)
}

// belongs reports whether the stored record r still calls for entry e.
func belongs(r keystore.Record, e indexEntry) bool {
	return e.asset == "" || slices.Contains(r.Assets, e.asset)
}

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

// CreateBatch implements keystore.Store. The records are written with SET
// NX, pipelined (pipeMax per round trip), and then their index entries with
// ZADD, grouped per index key (zaddMax members per ZADD), pipelined too: a
// batch of n records with few distinct assets costs about 2n/pipeMax round
// trips, not n.
//
// Index entries are written after the records, by separate commands (they
// live in other cluster slots). When an index write fails, the record is
// stored but missing from List and ListAsset, and its result is
// keystore.ErrUnavailable, so the caller sends the batch again. The
// records already stored then answer keystore.ErrExists, and for every
// such record CreateBatch reads the stored record and writes its index
// entries again (ZADD is idempotent): a resent batch heals the index. The
// same holds when a lost reply made go-redis retry a SET NX that Redis had
// applied.
//
// A record whose ID is taken answers a *keystore.ExistsError with the
// record as stored, read by those same pipelined GETs, so that
// keystore.Keys.Import tells "unchanged" from "conflict" without a GET per
// key; one that is gone again or does not decode answers a plain
// keystore.ErrExists. On Redis Cluster the keys of a batch lie in many
// slots: go-redis splits each pipeline by node, and no command of a batch
// touches two keys.
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
	enc := make([][]byte, len(rs))
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
		enc[i] = b
	}
	errs := make([]error, len(rs))
	if len(rs) == 0 {
		return errs, nil
	}

	// 1. The records: SET NX, pipelined. In one pipeline Redis runs the
	// commands in order, so a KID repeated in the batch answers ErrExists
	// the second time.
	sets := make([]*redis.StatusCmd, len(rs))
	answered, sent := 0, 0
	var first, broken error
	for sent < len(rs) && broken == nil {
		end := min(sent+pipeMax, len(rs))
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := sent; i < end; i++ {
				sets[i] = p.SetArgs(ctx, s.keyName(rs[i].ID), enc[i], redis.SetArgs{Mode: "NX"})
			}
			return nil
		})
		for i := sent; i < end; i++ {
			switch err := sets[i].Err(); {
			case err == nil:
				answered++
			case errors.Is(err, redis.Nil): // NX and the key exists
				errs[i] = keystore.ErrExists
				answered++
			default:
				errs[i] = translate(err)
				if first == nil {
					first = errs[i]
				}
				if !isReply(err) {
					broken = errs[i]
				}
			}
		}
		sent = end
	}
	if answered == 0 {
		return nil, first
	}
	for i := sent; i < len(rs); i++ {
		errs[i] = fmt.Errorf("not sent after an earlier failure: %w", broken)
	}

	// 2. The index entries: of the records created now, and of the stored
	// records that answered ErrExists (healing an index write that failed
	// before).
	var es []indexEntry
	var existing []int
	for i, err := range errs {
		switch {
		case err == nil:
			es = append(es, entries(rs[i].ID, rs[i].Assets, i)...)
		case errors.Is(err, keystore.ErrExists):
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
	s.addIndex(ctx, es, func(owner int, err error) { errs[owner] = indexError(err) })
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

// List implements keystore.Store. It pages through the global index with
// ZRANGE BYLEX (listChunk members at a time) and reads the records of each
// page in one pipeline. An index member whose record is gone (a Delete
// whose index cleanup failed) is skipped and removed; one that is not a
// member this package writes is skipped. A record that does not decode or
// names another KID fails the call, as Get would.
//
// List sees only what the index holds: a record whose index write failed
// (its Create or CreateBatch answered keystore.ErrUnavailable) is missing
// until the same record is sent again, which writes its entries.
func (s *Store) List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Record, error) {
	var out []keystore.Record
	err := s.scanIndex(ctx, indexEntry{id: from}, limit, func(ids []keystore.KeyID, recs [][]byte) error {
		for i, id := range ids {
			r, err := decodeAt(id, recs[i])
			if err != nil {
				return fmt.Errorf("key %s: %w", id, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: list: %w", err)
	}
	return out, nil
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
