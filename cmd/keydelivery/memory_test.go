package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// memoryBound is the documented bound of one request's memory: 64 MiB over
// the body's own size, and for an import that is stored, perKey more for
// each key (at most admin.MaxImportKeys of them), at the server's default
// GOGC (docs/security.md). Memory, unlike time, does not depend on how
// busy the machine is, so the test asserts the bound as it is documented;
// docs/security.md reports the peaks measured.
const (
	memoryBound = 64 << 20
	perKey      = 2560
)

// TestRequestMemory sends the inputs to the real server binary,
// one process each (the test names hold no comma: --token-certs takes a
// comma-separated list, and the temporary directory is named after the
// test), and checks its peak resident memory (VmHWM) grows by
// less than memoryBound plus the body (issue: "A 4 MB JSON import of
// 2,000,000 bad entries built a 281 MB answer and took RSS from 15 MiB to
// 2,662 MiB"; "A CPIX document of 9 million nested elements (63 MB, under
// the default limit) took 1,540 MiB").
func TestRequestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the memory test sends 130 MB to four server processes")
	}
	for _, c := range []struct {
		name, contentType string
		keys              int // stored by the import
		body              func() []byte
		check             func(t *testing.T, a answer)
	}{
		{"2 million bad JSON entries in 4 MB", "application/json", 0, func() []byte {
			return []byte("[" + strings.Repeat("1,", 2_000_000-1) + "1]")
		}, func(t *testing.T, a answer) {
			var p struct {
				Reason       string `json:"reason"`
				Problems     []any  `json:"problems"`
				ProblemCount int    `json:"problemCount"`
			}
			if err := json.Unmarshal(a.body, &p); err != nil || a.status != 400 || p.Reason != "invalid_entries" ||
				len(p.Problems) != 100 || p.ProblemCount != 2_000_000 || len(a.body) > 64<<10 {
				t.Errorf("answer: %d, %d bytes, reason %q, %d problems listed of %d", a.status, len(a.body), p.Reason, len(p.Problems), p.ProblemCount)
			}
		}},
		{"9 million nested CPIX elements (63 MB)", "application/cpix+xml", 0, func() []byte {
			const n = 9_000_000
			var b bytes.Buffer
			b.WriteString(`<CPIX xmlns="urn:dashif:org:cpix">`)
			b.WriteString(strings.Repeat("<a>", n))
			b.WriteString(strings.Repeat("</a>", n))
			b.WriteString(`</CPIX>`)
			return b.Bytes()
		}, func(t *testing.T, a answer) {
			if a.status != 400 || !strings.Contains(string(a.body), `"nesting_too_deep"`) {
				t.Errorf("answer: %d %.300s", a.status, a.body)
			}
		}},
		{"100 thousand new keys as JSON", "application/json", 100_000, func() []byte { return jsonImport(t, 100_000) }, func(t *testing.T, a answer) {
			if a.status != 200 || strings.Count(string(a.body), `"Status":"created"`) != 100_000 {
				t.Errorf("answer: %d %.300s", a.status, a.body)
			}
		}},
		{"100 thousand new keys as CPIX", "application/cpix+xml", 100_000, func() []byte { return cpixImport(t, 100_000) }, func(t *testing.T, a answer) {
			if a.status != 200 || strings.Count(string(a.body), `"Status":"created"`) != 100_000 {
				t.Errorf("answer: %d %.300s", a.status, a.body)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMaterial(t)
			p := startProcess(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db")), nil, nil)
			body := c.body()
			before := p.highWater(t)
			a := p.post(t, "/api/keys/import", c.contentType, body)
			after := p.highWater(t)
			c.check(t, a)
			grew := after - before
			t.Logf("%s: body %s, peak RSS %s before, %s after (+%s)", c.name, mib(int64(len(body))), mib(before), mib(after), mib(grew))
			if bound := memoryBound + int64(len(body)) + int64(c.keys)*perKey; grew > bound {
				t.Errorf("peak RSS grew by %s for a body of %s and %d keys stored, bound %s", mib(grew), mib(int64(len(body))), c.keys, mib(bound))
			}
			if !p.alive() {
				t.Fatalf("the server died: %v", p.exitErr)
			}
		})
	}
}

// jsonImport is a JSON import of n new random keys.
func jsonImport(t testing.TB, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"Id":"%s","Data":"%s"}`, randomKID(t), base64.StdEncoding.EncodeToString(randomBytes(t, 16)))
	}
	b.WriteByte(']')
	return b.Bytes()
}

// cpixImport is a CPIX document of n new random keys.
func cpixImport(t testing.TB, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><ContentKeyList>`)
	for range n {
		fmt.Fprintf(&b, `<ContentKey kid="%s"><Data><pskc:Secret><pskc:PlainValue>%s</pskc:PlainValue></pskc:Secret></Data></ContentKey>`,
			randomKID(t), base64.StdEncoding.EncodeToString(randomBytes(t, 16)))
	}
	b.WriteString(`</ContentKeyList></CPIX>`)
	return b.Bytes()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomKID(t testing.TB) string {
	var id keystore.KeyID
	copy(id[:], randomBytes(t, 16))
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id.String()
}

// BenchmarkDeliveryDuringImport measures the delivery plane's p99 latency
// (cached token and key, as a playing viewer's requests are) on the real
// binary, idle and while a maximum import (100,000 keys of CPIX) runs on
// the admin plane: issue 12 wants it within twice the idle p99. It is a
// benchmark, not a test: latency depends on the machine. Run it with
// go test -run '^$' -bench DeliveryDuringImport -benchtime 1x ./cmd/keydelivery
func BenchmarkDeliveryDuringImport(b *testing.B) {
	for b.Loop() {
		idle, busy := deliveryDuringImport(b)
		b.ReportMetric(float64(idle.Microseconds()), "idle-p99-µs")
		b.ReportMetric(float64(busy.Microseconds()), "import-p99-µs")
		b.ReportMetric(float64(busy)/float64(idle), "ratio")
	}
}

// deliveryDuringImport returns the p99 of key requests to a fresh server
// process, idle and during a 100,000-key CPIX import.
func deliveryDuringImport(b *testing.B) (idle, busy time.Duration) {
	m := newMaterial(b)
	p := startProcess(b, m.args("bolt:"+filepath.Join(m.dir, "keys.db")), nil, nil)
	id := randomKID(b)
	a := p.post(b, "/api/keys", "application/json", []byte(`{"id":"`+id+`"}`))
	if a.status != 201 {
		b.Fatalf("create: %d %s", a.status, a.body)
	}
	tok := m.token(b, id)
	client := &http.Client{}
	get := func() time.Duration {
		req, _ := http.NewRequest("GET", p.deliveryURL+"/keys/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("key: %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	p99 := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)*99/100]
	}
	for range 200 { // warm up the caches and the connection
		get()
	}
	var ds []time.Duration
	for range 3000 {
		ds = append(ds, get())
	}
	idle = p99(ds)
	body := cpixImport(b, 100_000)
	done := make(chan answer, 1)
	go func() { done <- p.post(b, "/api/keys/import", "application/cpix+xml", body) }()
	ds = ds[:0]
	for {
		select {
		case a := <-done:
			if a.status != 200 {
				b.Fatalf("import: %d", a.status)
			}
			if len(ds) < 100 {
				b.Fatalf("only %d requests during the import", len(ds))
			}
			return idle, p99(ds)
		default:
			ds = append(ds, get())
		}
	}
}
