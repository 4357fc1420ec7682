package keystore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzRecordRoundTrip: whatever EncodeRecord writes, DecodeRecord reads back
// unchanged, and reads it exactly as encoding/json (which wrote it) does,
// so the faster reader never gives a stored record another meaning.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte("sealed"), []byte{}, "a name", 1, 2, int64(1764000000123456789), int64(0), "asset-1\x00asset-2")
	f.Add([]byte{}, []byte{}, []byte("0123456789abcdef"), "", 0, 0, int64(0), int64(-5), "")
	f.Add([]byte{0xff}, []byte{0}, []byte(nil), "\xff\xfe invalid UTF-8 \u2028", -1, 99, int64(-62135596800000000000/1e9), int64(1), "\x00")
	f.Fuzz(func(t *testing.T, id, sealed, iv []byte, name string, typ, method int, created, deleted int64, assets string) {
		var r Record
		copy(r.ID[:], id)
		r.Sealed, r.IV, r.Name = sealed, iv, name
		r.Type, r.Method = ContentKeyType(typ), CreationMethod(method)
		r.Created = time.Unix(0, created).UTC()
		r.Updated = r.Created.Add(time.Second)
		if deleted != 0 {
			r.DeletedAt = time.Unix(0, deleted).UTC()
		}
		if assets != "" {
			r.Assets = strings.Split(assets, "\x00")
		}
		enc, err := EncodeRecord(r)
		if err != nil {
			return // a time json cannot write (year outside 0-9999)
		}
		got, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("DecodeRecord(%s) = %v", enc, err)
		}
		var v1 recordJSON
		if err := json.Unmarshal(enc, &v1); err != nil {
			t.Fatalf("encoding/json cannot read %s: %v", enc, err)
		}
		want := Record{ID: v1.ID, Sealed: v1.Sealed, IV: v1.IV, Name: v1.Name, Type: v1.Type,
			Method: v1.Method, Created: v1.Created, Updated: v1.Updated, Assets: v1.Assets}
		if v1.DeletedAt != nil {
			want.DeletedAt = *v1.DeletedAt
		}
		if !sameRecord(got, want) {
			t.Fatalf("%s\nDecodeRecord: %+v\nencoding/json: %+v", enc, got, want)
		}
		// And the record is the one written, but for what JSON cannot
		// carry: invalid UTF-8 in names becomes U+FFFD.
		if !bytes.Equal(got.Sealed, r.Sealed) || !bytes.Equal(got.IV, r.IV) || got.ID != r.ID || got.Type != r.Type ||
			got.Method != r.Method || !got.Created.Equal(r.Created) || !got.Updated.Equal(r.Updated) || !got.DeletedAt.Equal(r.DeletedAt) {
			t.Fatalf("wrote %+v, read %+v", r, got)
		}
	})
}

// sameRecord compares records, nil and empty byte slices alike.
func sameRecord(a, b Record) bool {
	return a.ID == b.ID && bytes.Equal(a.Sealed, b.Sealed) && bytes.Equal(a.IV, b.IV) && a.Name == b.Name &&
		a.Type == b.Type && a.Method == b.Method && a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) &&
		a.DeletedAt.Equal(b.DeletedAt) && reflect.DeepEqual(a.Assets, b.Assets) &&
		a.Period.Equal(b.Period) && a.TrackType == b.TrackType
}

// TestDecodeRecord: the record read shares no memory with the bytes
// (bbolt's are only valid inside a transaction), and what is not a
// well-formed record of a known version is refused.
func TestDecodeRecord(t *testing.T) {
	r := Record{ID: KeyID{9}, Sealed: []byte("sealed value"), IV: []byte("iv"), Name: "name", Type: 1, Method: 2,
		Created: time.Date(2026, 11, 22, 1, 2, 3, 4, time.UTC), Assets: []string{"a1"}}
	r.Updated = r.Created
	enc, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Clone(enc)
	got, err := DecodeRecord(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if !sameRecord(got, r) {
		t.Fatalf("after the input was overwritten: %+v, want %+v", got, r)
	}

	s := string(enc)
	for name, bad := range map[string]string{
		"not JSON":         "sealed",
		"empty":            "",
		"version 2":        strings.Replace(s, `"v":1`, `"v":2`, 1),
		"no version":       strings.Replace(s, `"v":1,`, ``, 1),
		"repeated name":    strings.Replace(s, `"v":1,`, `"v":1,"v":1,`, 1),
		"bad KID":          strings.Replace(s, `"id":"09`, `"id":"zz`, 1),
		"bad time":         strings.Replace(s, `"created":"2026`, `"created":"20x6`, 1),
		"sealed not bytes": strings.Replace(s, `"sealed":"`, `"sealed":"!`, 1),
		"trailing data":    s + "{}",
	} {
		if _, err := DecodeRecord([]byte(bad)); err == nil {
			t.Errorf("%s: DecodeRecord(%s) accepted", name, bad)
		}
	}
	// A field this version does not know is ignored, so an older server
	// can still read a record a newer one wrote.
	if got, err := DecodeRecord([]byte(strings.Replace(s, `"v":1,`, `"v":1,"future":[1,{"x":2}],`, 1))); err != nil || !sameRecord(got, r) {
		t.Fatalf("with an unknown field: %+v, %v", got, err)
	}
}

// BenchmarkDecodeRecord reads a typical stored record (what every key
// request that misses the key cache does), with DecodeRecord and, for
// comparison, with encoding/json.
func BenchmarkDecodeRecord(b *testing.B) {
	now := time.Now()
	enc, err := EncodeRecord(Record{ID: KeyID{1, 2, 3}, Sealed: make([]byte, 60), Name: "a key name", Type: 1,
		Method: 2, Created: now, Updated: now, Assets: []string{"asset-1"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DecodeRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRecord(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var j recordJSON
			if err := json.Unmarshal(enc, &j); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRecordPeriodAndTrackType: the key period (index 0 included, with and
// without times) and the track type round-trip, and a record written
// before they existed reads with neither.
func TestRecordPeriodAndTrackType(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for name, p := range map[string]*KeyPeriod{
		"none":       nil,
		"index 0":    {Index: 0},
		"with times": {Index: 42, Start: t0, End: t0.Add(30 * time.Second)},
		"start only": {Index: 1 << 40, Start: t0},
	} {
		r := Record{ID: KeyID{1}, Sealed: []byte("s"), Created: t0, Updated: t0, Period: p, TrackType: "STEREO_AUDIO"}
		enc, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(enc)
		if err != nil || !sameRecord(got, r) {
			t.Fatalf("%s: %s read as %+v (%v)", name, enc, got, err)
		}
		if p == nil && strings.Contains(string(enc), `"period"`) {
			t.Errorf("%s: %s holds a period", name, enc)
		}
	}
	old := `{"v":1,"id":"01000000-0000-0000-0000-000000000000","sealed":"cw==","type":0,"method":0,"created":"2026-05-01T10:00:00Z","updated":"2026-05-01T10:00:00Z"}`
	got, err := DecodeRecord([]byte(old))
	if err != nil || got.Period != nil || got.TrackType != "" {
		t.Fatalf("an older record: %+v, %v", got, err)
	}
	for _, bad := range []string{"has space", "\x00", strings.Repeat("A", MaxTrackType+1), "é"} {
		if err := ValidateTrackType(bad); !errors.Is(err, ErrInvalidTrackType) {
			t.Errorf("ValidateTrackType(%q) = %v", bad, err)
		}
	}
	if err := ValidateTrackType("SD+HD1"); err != nil {
		t.Error(err)
	}
}

// TestRecordAuthorizationPolicyID: the AMS AuthorizationPolicyId is
// written only when set, and a record written before the field existed
// reads as "".
func TestRecordAuthorizationPolicyID(t *testing.T) {
	now := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	r := Record{ID: KeyID{9}, Sealed: []byte("s"), Created: now, Updated: now}
	enc, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(enc), "authorizationPolicyId") {
		t.Fatalf("an empty policy is written: %s", enc)
	}
	old := `{"v":1,"id":"09000000-0000-0000-0000-000000000000","sealed":"cw==","type":4,"method":2,"created":"2026-11-22T01:02:03Z","updated":"2026-11-22T01:02:03Z"}`
	got, err := DecodeRecord([]byte(old))
	if err != nil || got.AuthorizationPolicyID != "" || got.Type != 4 {
		t.Fatalf("an older record: %+v, %v", got, err)
	}
	r.AuthorizationPolicyID = "nb:ckpid:UUID:f0a3d5b1-6f0e-4d57-a5b2-1c2d3e4f5a6b"
	if enc, err = EncodeRecord(r); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeRecord(enc); err != nil || got.AuthorizationPolicyID != r.AuthorizationPolicyID {
		t.Fatalf("round trip: %q, %v", got.AuthorizationPolicyID, err)
	}
}
