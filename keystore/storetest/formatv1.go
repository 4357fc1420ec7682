package storetest

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// FormatV1 is a store's worth of values sealed in keystore's format 1, as
// the server wrote them before each kind of sealed value had its own
// additional data (commit 576c2b6, by the code of that commit). No code
// writes format 1 any more, so the values are fixed here; they are sealed
// under a test-only KEK, never used elsewhere.
type FormatV1 struct {
	// KEKLine is the KEK file line of the KEK they are sealed under. Its
	// ID, "abcdef", has six characters: its check label "kek-check/abcdef"
	// is sixteen bytes, the length of a KID.
	KEKLine string
	// Key is a content key (ID and Value) and KeySealed its sealed value.
	Key       keystore.Key
	KeySealed []byte
	// Seed is a key seed (ID, Seed and Name) and SeedMeta the meta value
	// stored under "keyseed/<ID>".
	Seed     keystore.KeySeed
	SeedMeta []byte
	// Check is the check value of the KEK, stored under "kek-check/abcdef".
	Check []byte
	// Confusable is a content key whose KID's bytes are "kek-check/abcdef"
	// and ConfusableSealed its sealed value: format 1 bound it to the same
	// additional data as Check.
	Confusable       keystore.Key
	ConfusableSealed []byte
}

// LoadFormatV1 returns the format-1 values.
func LoadFormatV1(tb testing.TB) FormatV1 {
	tb.Helper()
	b64 := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	id := func(s string) keystore.KeyID {
		id, err := keystore.ParseKeyID(s)
		if err != nil {
			tb.Fatal(err)
		}
		return id
	}
	v := FormatV1{
		KEKLine:          "abcdef RqQMVtPyvjFlGZ0cNJ0O74/La43thPvQOZ06hCLHGHg=",
		Key:              keystore.Key{ID: id("4311745d-1c09-9248-17ad-d8a48bb09fc2")},
		KeySealed:        b64("AQZhYmNkZWYdDrLu/ncrlIr9GBIjdiOwvVNtc8TE4fyuOTBXe21oKyWmtsXpwZvzOLxuJg=="),
		Seed:             keystore.KeySeed{ID: id("b7778e70-7444-086e-eb99-effbbf2d5be2"), Seed: b64("d/dDbQiJ5DENtb8LfiVxeLkGL1pKXXviyxpOpblp"), Name: "v1 seed"},
		SeedMeta:         []byte(`{"name":"v1 seed","created":"2026-11-22T10:00:00Z","sealed":"AQZhYmNkZWZHwKo/gQC6BX8mJGaDg5svKcL1SN+0FKUsX54e/5/TUUM3gISCCUfo5dsDVQSI/vnOVMRcG3memlh6"}`),
		Check:            b64("AQZhYmNkZWZZHlo/YbE40rd9Ai0zG7mieeZlNSgwmTGMqWllRb0deoAUuba9MYUFt/0aNg=="),
		Confusable:       keystore.Key{ID: id("6b656b2d-6368-6563-6b2f-616263646566")},
		ConfusableSealed: b64("AQZhYmNkZWaD4Q3eBwGmD86EUDJ9USmY9irEoyItthoJ1iUtTVeulyDZ0ARBV7Ad+XPjWQ=="),
	}
	copy(v.Key.Value[:], b64("kjw3dyvLfcEph5MicNtcAw=="))
	copy(v.Confusable.Value[:], b64("/6FjM0ow5o0t5NnXkUCUzA=="))
	if string(v.Confusable.ID[:]) != "kek-check/abcdef" {
		tb.Fatalf("confusable KID %s", v.Confusable.ID)
	}
	return v
}

// seedSealed returns the sealed value inside a key seed's meta value.
func seedSealed(tb testing.TB, meta []byte) []byte {
	tb.Helper()
	var j struct {
		Sealed []byte `json:"sealed"`
	}
	if err := json.Unmarshal(meta, &j); err != nil {
		tb.Fatal(err)
	}
	return j.Sealed
}

// seedMeta returns a key seed's meta value holding sealed.
func seedMeta(tb testing.TB, sealed []byte) []byte {
	tb.Helper()
	b, err := json.Marshal(struct {
		Created string `json:"created"`
		Sealed  []byte `json:"sealed"`
	}{"2026-11-22T10:00:00Z", sealed})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
