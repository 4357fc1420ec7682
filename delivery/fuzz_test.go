package delivery

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// FuzzClearKeyBody: whatever the body, the ClearKey endpoint answers a
// license or a 4xx, never a 500, and only a 200 carries the key.
func FuzzClearKeyBody(f *testing.F) {
	granted := keystore.KeyID{0x0a, 0x4f, 0x6e, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	kid := base64.RawURLEncoding.EncodeToString(granted[:])
	for _, s := range []string{
		`{"kids":["` + kid + `"],"type":"temporary"}`,
		`{"kids":["` + kid + `","AAAAAAAAAAAAAAAAAAAAAA"]}`,
		`{"kids":[],"type":"persistent-license"}`,
		`{"kids":[null,1,{}]}`, `[]`, `null`, ``, `{"kids":["` + kid + `=="]}`,
	} {
		f.Add(s)
	}
	value := [16]byte{0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8}
	keys := &fakeKeys{keys: map[keystore.KeyID]keystore.Key{granted: {ID: granted, Value: value}}}
	h, _ := newTestHandler(f, keys, granted)
	secret := base64.RawURLEncoding.EncodeToString(value[:])
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/clearkey/license", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
		case 400, 403, 404, 413:
			if strings.Contains(rec.Body.String(), secret) {
				t.Fatalf("%d carries the key", rec.Code)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
