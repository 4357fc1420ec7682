package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// canonicalKIDs parses every KID in any accepted form and returns the
// canonical forms, in order, without duplicates.
func canonicalKIDs(in []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, err := keystore.ParseKeyID(s)
		if err != nil {
			return nil, err
		}
		c := id.String()
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// readKIDFile reads one KID per line; blank lines and # comments are skipped.
func readKIDFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return canonicalKIDs(lines)
}

// adminClient calls the admin plane's key API.
type adminClient struct {
	base  string // http://127.0.0.1:PORT
	token string
	http  *http.Client
}

func newAdminClient(base, token string) *adminClient {
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{
		Timeout:   5 * time.Minute, // a large import is one request
		Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 2},
	}}
}

// importBody posts an import (JSON or CPIX) and returns how many entries
// the answer lists.
func (a *adminClient) importBody(ctx context.Context, contentType string, body []byte) (int, error) {
	n, _, err := a.importTimed(ctx, contentType, body)
	return n, err
}

// importTimed is importBody that also returns the time from sending the
// request to having read the whole answer; checking the answer (a JSON
// array of every key) is the client's work and comes after.
func (a *adminClient) importTimed(ctx context.Context, contentType string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/api/keys/import", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+a.token)
	start := time.Now()
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("admin import: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("admin import: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return 0, 0, fmt.Errorf("admin import: %s: %s", resp.Status, clip(string(b), 400))
	}
	var results []json.RawMessage
	if err := json.Unmarshal(b, &results); err != nil {
		return 0, 0, fmt.Errorf("admin import: the answer is not a JSON array: %w", err)
	}
	return len(results), took, nil
}

// importEntry is one entry of the JSON import format.
type importEntry struct {
	ID   string `json:"Id"`
	Data string `json:"Data"`
}

// randomKeys returns n random KIDs (canonical) and 16-byte values.
func randomKeys(n int) ([]keystore.KeyID, [][]byte, error) {
	ids := make([]keystore.KeyID, n)
	vals := make([][]byte, n)
	buf := make([]byte, 32*n)
	if _, err := rand.Read(buf); err != nil {
		return nil, nil, err
	}
	for i := range ids {
		copy(ids[i][:], buf[32*i:32*i+16])
		ids[i][6] = ids[i][6]&0x0f | 0x40 // UUID version 4
		ids[i][8] = ids[i][8]&0x3f | 0x80 // RFC 9562 variant
		vals[i] = buf[32*i+16 : 32*i+32]
	}
	return ids, vals, nil
}

// createKeys makes n random keys through POST /api/keys/import, in batches,
// and returns their KIDs. Progress goes to progress.
func (a *adminClient) createKeys(ctx context.Context, n, batch int, progress io.Writer) ([]string, error) {
	ids, vals, err := randomKeys(n)
	if err != nil {
		return nil, err
	}
	kids := make([]string, n)
	start := time.Now()
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		entries := make([]importEntry, 0, hi-lo)
		for i := lo; i < hi; i++ {
			kids[i] = ids[i].String()
			entries = append(entries, importEntry{ID: kids[i], Data: base64.StdEncoding.EncodeToString(vals[i])})
		}
		body, err := json.Marshal(entries)
		if err != nil {
			return nil, err
		}
		got, err := a.importBody(ctx, "application/json", body)
		if err != nil {
			return nil, fmt.Errorf("create keys %d-%d of %d: %w", lo, hi, n, err)
		}
		if got != hi-lo {
			return nil, fmt.Errorf("create keys %d-%d of %d: the answer lists %d entries", lo, hi, n, got)
		}
		if n > batch {
			fmt.Fprintf(progress, "  created %d/%d keys (%.0f keys/s)\n", hi, n, float64(hi)/time.Since(start).Seconds())
		}
	}
	return kids, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
