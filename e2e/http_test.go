//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s %s", a.status, a.header.Get("Content-Type"), redactTokens(string(a.body[:min(len(a.body), 300)])))
}

func do(method, url string, header map[string]string, body []byte) (answer, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// corsAllowed checks that a answers origin as an allowed, credentialed
// origin: the exact origin echoed, Access-Control-Allow-Credentials: true.
func corsAllowed(a answer, origin string) error {
	if got := a.header.Get("Access-Control-Allow-Origin"); got != origin {
		return fmt.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
	if got := a.header.Get("Access-Control-Allow-Credentials"); got != "true" {
		return fmt.Errorf("Access-Control-Allow-Credentials %q, want \"true\"", got)
	}
	return nil
}

func headerHas(a answer, name string, want ...string) error {
	v := strings.ToLower(strings.Join(a.header.Values(name), ","))
	for _, w := range want {
		if !strings.Contains(v, strings.ToLower(w)) {
			return fmt.Errorf("%s %q lacks %q", name, v, w)
		}
	}
	return nil
}

// runCORSChecks checks the delivery plane's CORS answers for the page
// origin, and that an explicit --cors-origins replaces dev mode's "*".
func runCORSChecks(t *testing.T, e *env, rep *reporter, s *server, pages *pageServer, name func(string) string, kid string) {
	keyURL := s.delivery + "/keys/" + kid
	err := func() error {
		a, err := do(http.MethodOptions, keyURL, map[string]string{"Origin": pages.origin,
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, nil)
		if err != nil {
			return err
		}
		if a.status/100 != 2 {
			return failf(a.String(), "preflight answered %d", a.status)
		}
		return errors.Join(corsAllowed(a, pages.origin), headerHas(a, "Access-Control-Allow-Headers", "authorization"),
			headerHas(a, "Access-Control-Allow-Methods", "GET"), headerHas(a, "Vary", "Origin"))
	}()
	rep.result(t, name("cors/keys-preflight"), "OPTIONS /keys/{kid} from the page origin: origin echoed, credentials, Authorization allowed", err)

	other := "http://127.0.0.1:1"
	err = func() error {
		a, err := do(http.MethodOptions, keyURL, map[string]string{"Origin": other,
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, nil)
		if err != nil {
			return err
		}
		if v := a.header.Get("Access-Control-Allow-Origin"); v != "" {
			return failf(a.String(), "preflight from %s (not in --cors-origins) answered Access-Control-Allow-Origin %q: dev mode's * was not replaced", other, v)
		}
		a, err = do(http.MethodGet, keyURL, map[string]string{"Origin": other}, nil)
		if err != nil {
			return err
		}
		if v := a.header.Get("Access-Control-Allow-Origin"); v != "" {
			return failf(a.String(), "a GET from %s answered Access-Control-Allow-Origin %q", other, v)
		}
		return nil
	}()
	rep.result(t, name("cors/other-origin"), "an origin not in --cors-origins gets no CORS headers (dev's * replaced)", err)
}

// clearKeyLicense is the license endpoint's JSON, request and answer.
type clearKeyLicense struct {
	Kids []string `json:"kids,omitempty"`
	Keys []struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		K   string `json:"k"`
	} `json:"keys,omitempty"`
	Type string `json:"type"`
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// runClearKeyHTTPChecks speaks the ClearKey license protocol the way
// Chromium's CDM does, from Go, and checks the keys and every refusal.
func runClearKeyHTTPChecks(t *testing.T, e *env, rep *reporter, s *server, pages *pageServer, name func(string) string, tk tokens) {
	licenseURL := s.delivery + "/clearkey/license"
	var kids []string
	for _, k := range e.cencKeys {
		kids = append(kids, b64url(k.kid[:]))
	}
	request, _ := json.Marshal(clearKeyLicense{Kids: kids, Type: "temporary"})

	err := func() error {
		a, err := do(http.MethodOptions, licenseURL, map[string]string{"Origin": pages.origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}, nil)
		if err != nil {
			return err
		}
		if a.status/100 != 2 {
			return failf(a.String(), "preflight answered %d", a.status)
		}
		return errors.Join(corsAllowed(a, pages.origin), headerHas(a, "Access-Control-Allow-Headers", "authorization", "content-type"),
			headerHas(a, "Access-Control-Allow-Methods", "POST"))
	}()
	rep.result(t, name("cors/license-preflight"), "OPTIONS /clearkey/license: POST with Authorization and Content-Type allowed", err)

	err = func() error {
		for _, via := range []string{"header", "query"} {
			url, h := licenseURL, map[string]string{"Origin": pages.origin, "Content-Type": "application/json"}
			if via == "header" {
				h["Authorization"] = "Bearer " + tk.cenc
			} else {
				url += "?token=" + tk.cenc
			}
			a, err := do(http.MethodPost, url, h, request)
			if err != nil {
				return err
			}
			if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				return failf(a.String(), "token in the %s: answered %d %s, want 200 application/json", via, a.status, a.header.Get("Content-Type"))
			}
			if err := corsAllowed(a, pages.origin); err != nil {
				return err
			}
			var lic clearKeyLicense
			if err := json.Unmarshal(a.body, &lic); err != nil {
				return failf(a.String(), "the license is not JSON: %v", err)
			}
			if lic.Type != "temporary" || len(lic.Keys) != len(e.cencKeys) {
				return failf(a.String(), "want type temporary and %d keys; got type %q, %d keys", len(e.cencKeys), lic.Type, len(lic.Keys))
			}
			for _, k := range e.cencKeys {
				found := false
				for _, got := range lic.Keys {
					if got.Kid == b64url(k.kid[:]) {
						found = true
						if got.Kty != "oct" || got.K != b64url(k.key[:]) {
							return fmt.Errorf("KID %s: kty %q and a key that is not the one imported", k.kidString(), got.Kty)
						}
					}
				}
				if !found {
					return failf(a.String(), "no key for KID %s (%s)", k.kidString(), b64url(k.kid[:]))
				}
			}
		}
		return nil
	}()
	rep.result(t, name("clearkey/license"), "POST /clearkey/license (token in header and query): both keys, byte for byte, base64url", err)

	// Every refusal, as the contract lists it.
	err = func() error {
		unstored := make([]byte, 16)
		_, _ = rand.Read(unstored)
		unstoredKID := uuidString([16]byte(unstored))
		grantUnstored, err := s.mint(e, s.dataDir+"/dev-token-signing.key", s.dataDir+"/dev-token-signing.crt", unstoredKID)
		if err != nil {
			return err
		}
		var many []string
		var manyKIDs []string
		for range 33 {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			many = append(many, b64url(b))
			manyKIDs = append(manyKIDs, uuidString([16]byte(b)))
		}
		grantMany, err := s.mint(e, s.dataDir+"/dev-token-signing.key", s.dataDir+"/dev-token-signing.crt", manyKIDs...)
		if err != nil {
			return err
		}
		tooMany, _ := json.Marshal(clearKeyLicense{Kids: many, Type: "temporary"})
		unstoredReq, _ := json.Marshal(clearKeyLicense{Kids: []string{b64url(unstored)}, Type: "temporary"})
		huge := append([]byte(`{"kids":["`), bytes.Repeat([]byte("A"), 200<<10)...)
		huge = append(huge, `"],"type":"temporary"}`...)
		cases := []struct {
			what   string
			token  string
			body   []byte
			status int
		}{
			{"bad signature", tk.cencBad, request, 401},
			{"expired", tk.cencExp, request, 401},
			{"no token", "", request, 401},
			{"other KID", tk.otherKID, request, 403},
			{"unstored KID", grantUnstored, unstoredReq, 404},
			{"malformed body", tk.cenc, []byte(`{"kids":"nope"`), 400},
			{"33 KIDs", grantMany, tooMany, 400},
			{"body over the limit", tk.cenc, huge, 413},
		}
		for _, c := range cases {
			h := map[string]string{"Origin": pages.origin, "Content-Type": "application/json"}
			if c.token != "" {
				h["Authorization"] = "Bearer " + c.token
			}
			a, err := do(http.MethodPost, licenseURL, h, c.body)
			if err != nil {
				return fmt.Errorf("%s: %v", c.what, err)
			}
			if a.status != c.status {
				return failf(a.String(), "%s: answered %d, want %d", c.what, a.status, c.status)
			}
			if !strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") {
				return failf(a.String(), "%s: Content-Type %q, want application/problem+json", c.what, a.header.Get("Content-Type"))
			}
			// "On every route of the delivery plane, errors included": a
			// browser player can only read a refusal that carries CORS.
			if err := corsAllowed(a, pages.origin); err != nil {
				return failf(a.String(), "%s: %d answer: %v", c.what, a.status, err)
			}
			if c.status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				return failf(a.String(), "%s: 401 without WWW-Authenticate: Bearer", c.what)
			}
			if bytes.Contains(a.body, []byte(b64url(e.cencKeys[0].key[:]))) || bytes.Contains(a.body, []byte(b64url(e.cencKeys[1].key[:]))) {
				return fmt.Errorf("%s: the refusal carries key material", c.what)
			}
		}
		return nil
	}()
	rep.result(t, name("clearkey/license/refusals"), "401 bad signature, expired, no token; 403 other KID; 404 unstored; 400 malformed, 33 KIDs; 413 too large; each a problem with CORS", err)
}
