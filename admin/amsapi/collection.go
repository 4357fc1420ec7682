package amsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/keystore"
)

// odataTime is an Edm.DateTime: ISO 8601 in plain JSON, and in the OData
// verbose format the form AMS wrote, "\/Date(<ms since 1970>)\/" (the
// JSON escape of / is what .NET's JSON readers look for; the string is
// /Date(ms)/).
type odataTime struct {
	t       time.Time
	verbose bool
}

// MarshalJSON implements json.Marshaler.
func (o odataTime) MarshalJSON() ([]byte, error) {
	if o.verbose {
		return []byte(`"\/Date(` + strconv.FormatInt(o.t.UnixMilli(), 10) + `)\/"`), nil
	}
	return json.Marshal(o.t.UTC().Format(time.RFC3339Nano))
}

// UnmarshalJSON reads either form (clients send entities back).
func (o *odataTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if ms, ok := strings.CutPrefix(s, "/Date("); ok {
		n, err := strconv.ParseInt(strings.TrimSuffix(ms, ")/"), 10, 64)
		if err != nil {
			return err
		}
		o.t, o.verbose = time.UnixMilli(n).UTC(), true
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	o.t = t
	return err
}

// utf16Len is the length of s as .NET counts it (UTF-16 code units).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// projected is an entity cut down to the properties $select names, in the
// entity's order, __metadata kept.
type projected struct {
	names  []string
	values map[string]json.RawMessage
}

// MarshalJSON implements json.Marshaler.
func (p projected) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range p.names {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(n)
		b.Write(name)
		b.WriteByte(':')
		b.Write(p.values[n])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// project returns e with only the properties in selects (all when nil).
func project(e contentKey, selects []string) any {
	if selects == nil {
		return e
	}
	full, err := json.Marshal(e)
	if err != nil {
		return e
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(full, &values); err != nil {
		return e
	}
	p := projected{values: values}
	if _, ok := values["__metadata"]; ok {
		p.names = append(p.names, "__metadata")
	}
	for _, n := range contentKeyProperties {
		if slices.Contains(selects, n) {
			p.names = append(p.names, n)
		}
	}
	return p
}

// collectionAnswer answers a page of entities: {"value":[...]} (with
// "odata.count" when counted), or verbose {"d":{"results":[...]}} (with
// "__count"). OData v3 writes counts as strings.
func collectionAnswer(c *plane.Call, items []any, total int, counted bool) plane.Answer {
	if items == nil {
		items = []any{}
	}
	n := strconv.Itoa(total)
	if verbose(c) {
		d := map[string]any{"results": items}
		if counted {
			d["__count"] = n
		}
		return answer(c, http.StatusOK, d)
	}
	body := map[string]any{"value": items}
	if counted {
		body["odata.count"] = n
	}
	return plane.JSON(http.StatusOK, body)
}

// source walks a collection in KID order: a page holds the metadata of
// the keys stored at or after from (up to storePage index entries), and
// the last KID it read (a purged key has no metadata but still moves the
// page on); n is how many entries it read.
type source func(ctx context.Context, from keystore.KeyID) (keys []keystore.Key, last keystore.KeyID, n int, err error)

// allKeys is the source of GET /api/ContentKeys: the records themselves.
func allKeys(c *plane.Call) source {
	return func(ctx context.Context, from keystore.KeyID) ([]keystore.Key, keystore.KeyID, int, error) {
		keys, err := c.Keys().List(ctx, from, storePage)
		if err != nil || len(keys) == 0 {
			return nil, from, 0, err
		}
		return keys, keys[len(keys)-1].ID, len(keys), nil
	}
}

// assetKeys is the source of GET /api/Assets('A')/ContentKeys: the asset's
// index, then each key's metadata.
func assetKeys(c *plane.Call, asset string) source {
	return func(ctx context.Context, from keystore.KeyID) ([]keystore.Key, keystore.KeyID, int, error) {
		ids, err := c.Keys().ListAsset(ctx, asset, from, storePage)
		if err != nil || len(ids) == 0 {
			return nil, from, 0, err
		}
		keys := make([]keystore.Key, 0, len(ids))
		for _, id := range ids {
			k, err := c.Keys().Metadata(ctx, id)
			if errors.Is(err, keystore.ErrNotFound) {
				continue // purged since the index was read
			}
			if err != nil {
				return nil, from, 0, err
			}
			keys = append(keys, k)
		}
		return keys, ids[len(ids)-1], len(ids), nil
	}
}

// each calls fn with the metadata of every live key of src, in KID order,
// until fn returns false. Deleted keys are left out, as AMS had no soft
// delete.
func each(c *plane.Call, src source, fn func(k *keystore.Key) (bool, error)) error {
	ctx := c.Context()
	var from keystore.KeyID
	for {
		keys, last, n, err := src(ctx, from)
		if err != nil {
			return err
		}
		for i := range keys {
			if keys[i].Deleted() {
				continue
			}
			more, err := fn(&keys[i])
			if err != nil || !more {
				return err
			}
		}
		if n < storePage {
			return nil
		}
		next, ok := last.Next()
		if !ok {
			return nil
		}
		from = next
	}
}

// matching gathers the live keys of src that q's filter matches, sorted by
// q's order (KID order otherwise), at most maxMatched.
func (a *api) matching(c *plane.Call, q *query, src source) ([]keystore.Key, error) {
	var out []keystore.Key
	err := each(c, src, func(k *keystore.Key) (bool, error) {
		if q.filter != nil && !q.filter.match(k, a.protectionID) {
			return true, nil
		}
		if len(out) == maxMatched {
			return false, plane.Invalid("too_many_results", "more than %d ContentKeys match: narrow the query with $filter", maxMatched)
		}
		out = append(out, *k)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(q.orderBy) > 0 {
		slices.SortStableFunc(out, func(x, y keystore.Key) int { return compareKeys(q.orderBy, &x, &y) })
	}
	return out, nil
}

// collection answers GET of a collection with q: without a filter, an
// order or a count, the keys stream in KID order, a page at a time;
// otherwise every matching key is gathered first, then paged. Each entity
// of the page is read with its key for the checksum.
func (a *api) collection(c *plane.Call, q query, src source) (plane.Answer, error) {
	var page []keystore.KeyID
	total := 0
	if q.scans() {
		all, err := a.matching(c, &q, src)
		if err != nil {
			return plane.Answer{}, err
		}
		total = len(all)
		for i := q.skip; i < len(all) && len(page) < q.top; i++ {
			page = append(page, all[i].ID)
		}
	} else {
		skip := q.skip
		err := each(c, src, func(k *keystore.Key) (bool, error) {
			if skip > 0 {
				skip--
				return true, nil
			}
			page = append(page, k.ID)
			return len(page) < q.top, nil
		})
		if err != nil {
			return plane.Answer{}, err
		}
	}
	items := make([]any, 0, len(page))
	for _, id := range page {
		e, err := a.liveEntity(c, id)
		if errors.Is(err, keystore.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return plane.Answer{}, err
		}
		items = append(items, project(e, q.selects))
	}
	return collectionAnswer(c, items, total, q.count), nil
}

// list serves GET /api/ContentKeys: the live keys, in KID order unless
// $orderby says otherwise, at most 1000 per request.
func (a *api) list(c *plane.Call) (plane.Answer, error) {
	q, err := parseQuery(c, collectionOptions)
	if err != nil {
		return plane.Answer{}, err
	}
	return a.collection(c, q, allKeys(c))
}

// assetOf is the checked asset ID of an Assets('...') route.
func assetOf(c *plane.Call) (string, error) {
	asset, ok := odataKey(c, "assetId")
	if !ok {
		return "", plane.Invalid("invalid_odata_key",
			"the path segment must be Assets('<asset id>'), raw or percent-encoded, with a quote inside the ID written twice")
	}
	if err := keystore.ValidateAsset(asset); err != nil {
		return "", err
	}
	return asset, nil
}

// assetList serves GET /api/Assets('ASSETID')/ContentKeys: the live keys
// of the asset (created with it, or linked to it with $links).
func (a *api) assetList(c *plane.Call) (plane.Answer, error) {
	asset, err := assetOf(c)
	if err != nil {
		return plane.Answer{}, err
	}
	q, err := parseQuery(c, collectionOptions)
	if err != nil {
		return plane.Answer{}, err
	}
	return a.collection(c, q, assetKeys(c, asset))
}

// countAnswer counts the live keys of src that $filter matches, as OData's
// $count segment answers: the number alone, as text.
func (a *api) countAnswer(c *plane.Call, src source) (plane.Answer, error) {
	q, err := parseQuery(c, countOptions)
	if err != nil {
		return plane.Answer{}, err
	}
	q.count = true
	n := 0
	err = each(c, src, func(k *keystore.Key) (bool, error) {
		if q.filter == nil || q.filter.match(k, a.protectionID) {
			n++
		}
		return true, nil
	})
	if err != nil {
		return plane.Answer{}, err
	}
	return plane.Blob(http.StatusOK, "text/plain;charset=utf-8", []byte(strconv.Itoa(n))), nil
}

// count serves GET /api/ContentKeys/$count.
func (a *api) count(c *plane.Call) (plane.Answer, error) { return a.countAnswer(c, allKeys(c)) }

// assetCount serves GET /api/Assets('ASSETID')/ContentKeys/$count.
func (a *api) assetCount(c *plane.Call) (plane.Answer, error) {
	asset, err := assetOf(c)
	if err != nil {
		return plane.Answer{}, err
	}
	return a.countAnswer(c, assetKeys(c, asset))
}
