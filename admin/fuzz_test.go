package admin

import (
	"strings"
	"testing"
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
