package admin

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/keystore"
)

// FuzzCreateKeyBody: no body makes the handler panic or answer 5xx, and
// whatever is accepted is stored with a valid ID and a non-zero value.
func FuzzCreateKeyBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"id":"` + kid1 + `","key":"` + keyB64 + `","iv":"` + ivB64 + `","type":4,"name":"n"}`,
		`{"type":"CommonEncryption"}`, `{"key":"AQI="}`, `[]`, `{"id":null}`, `{"key":"7lIBmBeF+EGD\naguNx7EgQA=="}`,
	} {
		f.Add(s)
	}
	env := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		r := env.do(t, "POST", "/api/keys", secretWriter, body, "Content-Type", "application/json")
		if r.status >= 500 {
			t.Fatalf("%d for %q: %s", r.status, body, r.body)
		}
		if r.status == 201 {
			var m keyMetadata
			r.json(t, &m)
			if strings.Contains(string(r.body), `"key"`) {
				t.Fatalf("answer holds a key field: %s", r.body)
			}
		}
	})
}

// FuzzJSONImport: the streaming import reader never panics, lists at most
// plane.MaxProblems bad entries while counting them all, keeps no key of a
// refused batch, and quotes no Data value in a problem.
func FuzzJSONImport(f *testing.F) {
	for _, s := range []string{
		`[]`, `[1,2,3]`, `[{"Data":"` + keyB64 + `"}]`, `[{"Id":"` + kid1 + `","Data":"` + keyB64 + `","Iv":"` + ivB64 + `"}]`,
		`[{"Id":"` + kid1 + `","Data":"` + keyB64 + `"},{"Id":"` + kid1 + `","Data":"` + keyB64 + `"}]`,
		`[{"Data":"x"},{"Nope":1}]`, `[{"Data":"` + keyB64 + `","Data":"` + keyB64 + `"}]`, `{}`, `[`, `[1] 2`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		keys, byValue, err := parseJSONImport([]byte(body), keystore.EnvelopeEncryption, rand.Reader)
		if err != nil {
			if keys != nil || byValue != nil {
				t.Fatal("a refused batch returned keys")
			}
			var be *plane.EntriesError
			if errors.As(err, &be) {
				if len(be.Problems) > plane.MaxProblems || be.Count < len(be.Problems) || be.Count == 0 {
					t.Fatalf("%d problems listed, %d counted", len(be.Problems), be.Count)
				}
				for _, p := range be.Problems {
					if strings.Contains(p.Detail, keyB64) {
						t.Fatalf("a problem quotes a key: %+v", p)
					}
				}
			}
			return
		}
		if len(keys) == 0 || len(keys) > MaxImportKeys || byValue != nil && len(byValue) != len(keys) {
			t.Fatalf("%d keys, %d byValue", len(keys), len(byValue))
		}
	})
}
