package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// TestImportProblemsBounded (issue 12: "A 4 MB JSON import of 2,000,000
// bad entries built a 281 MB answer"): the answer lists the first 100 bad
// entries and counts them all.
func TestImportProblemsBounded(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	body := "[" + strings.Repeat(`1,`, 49_999) + `{"Data":"AAAAAAAAAAAAAAAAAAAAAA=="}]`
	r := env.do(t, "POST", "/api/keys/import", secretWriter, body)
	p := r.problem(t)
	if r.status != 400 || p.Reason != "invalid_entries" || len(p.Problems) != 100 || p.ProblemCount != 49_999 ||
		p.Problems[99].Index != 99 || !strings.Contains(p.Detail, "49999 entries") || len(r.body) > 32<<10 {
		t.Fatalf("answer: %d, %d bytes, %d problems listed, %d counted: %s", r.status, len(r.body), len(p.Problems), p.ProblemCount, p.Detail)
	}
	if n := countKeys(t, keys); n != 0 {
		t.Fatalf("%d keys stored from a refused batch", n)
	}
	// A syntax error is the body's fault, even after bad entries.
	if r := env.do(t, "POST", "/api/keys/import", secretWriter, `[1,2,`); r.status != 400 || r.problem(t).Reason != "invalid_body" {
		t.Fatalf("cut-off array: %d %s", r.status, r.body)
	}
}

// TestImportTooManyKeys: an import holds at most MaxImportKeys keys.
func TestImportTooManyKeys(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range MaxImportKeys + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"Data":"%s"}`, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("key-%012d", i))))
	}
	b.WriteByte(']')
	r := env.do(t, "POST", "/api/keys/import", secretWriter, b.String())
	if p := r.problem(t); r.status != 413 || p.Reason != "too_many_keys" {
		t.Fatalf("answer: %d %s", r.status, r.body)
	}
	if n := countKeys(t, keys); n != 0 {
		t.Fatalf("%d keys stored", n)
	}
	var doc strings.Builder
	doc.WriteString(`<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><ContentKeyList>`)
	for i := range MaxImportKeys + 1 {
		fmt.Fprintf(&doc, `<ContentKey kid="%08x-0000-4000-8000-000000000000"><Data><pskc:Secret><pskc:PlainValue>%s</pskc:PlainValue></pskc:Secret></Data></ContentKey>`,
			i, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("key-%012d", i))))
	}
	doc.WriteString(`</ContentKeyList></CPIX>`)
	r = env.do(t, "POST", "/api/keys/import", secretWriter, doc.String(), "Content-Type", "application/cpix+xml")
	if p := r.problem(t); r.status != 413 || p.Reason != "too_many_keys" {
		t.Fatalf("CPIX answer: %d %.300s", r.status, r.body)
	}
}

func countKeys(t *testing.T, keys *keystore.Keys) int {
	t.Helper()
	ks, err := keys.List(context.Background(), keystore.KeyID{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ks)
}

// TestImportWeakKeys (issue 12: "An all-zero key is stored silently by
// JSON and CPIX import"): a key of one repeated byte imports with a warning
// in its entry of the answer, the audit records and a metric.
func TestImportWeakKeys(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	zero := base64.StdEncoding.EncodeToString(make([]byte, 16))
	ones := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x11}, 16))
	good := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	for _, c := range []struct{ name, contentType, body string }{
		{"JSON", "application/json", `[{"Id":"` + seedKID1 + `","Data":"` + zero + `"},{"Id":"` + seedKID2 + `","Data":"` + good + `"},{"Data":"` + ones + `"}]`},
		{"CPIX", "application/cpix+xml", `<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><ContentKeyList>` +
			`<ContentKey kid="0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"><Data><pskc:Secret><pskc:PlainValue>` + zero + `</pskc:PlainValue></pskc:Secret></Data></ContentKey>` +
			`</ContentKeyList></CPIX>`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := env.do(t, "POST", "/api/keys/import", secretWriter, c.body, "Content-Type", c.contentType)
			var out []importedKey
			r.json(t, &out)
			if r.status != 200 {
				t.Fatalf("import: %d %s", r.status, r.body)
			}
			for _, e := range out {
				id, _ := keystore.ParseKeyID(e.ID)
				stored, err := keys.Get(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if weak := keystore.WeakValue(&stored.Value); weak != strings.HasPrefix(e.Warning, "weak_key") {
					t.Errorf("%s: weak %v, Warning %q", e.ID, weak, e.Warning)
				}
			}
			lines := auditLines(t, env.audit.String())
			last := lines[len(lines)-1]
			if w, _ := last["warning"].(string); !strings.HasPrefix(w, "weak_key:") || last["result"] != "ok" {
				t.Errorf("outcome record: %v", last)
			}
		})
	}
	if v := sumCounter(t, env, "keydelivery_admin_warnings_total"); v != 3 {
		t.Errorf("keydelivery_admin_warnings_total = %v, want 3", v)
	}
	// An import without weak keys has no warning anywhere.
	before := len(env.audit.String())
	r := env.do(t, "POST", "/api/keys/import", secretWriter, `[{"Data":"`+good+`"}]`)
	if r.status != 200 || strings.Contains(string(r.body), "Warning") || strings.Contains(env.audit.String()[before:], "warning") {
		t.Fatalf("a strong key was warned about: %s", r.body)
	}
}

// sumCounter sums the series of a counter in the test registry.
func sumCounter(t *testing.T, env *testEnv, name string) float64 {
	t.Helper()
	mfs, err := env.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestCreateRefusesWeakKeys: create never makes a weak key, given or drawn.
func TestCreateRefusesWeakKeys(t *testing.T) {
	env := newEnv(t, nil)
	for _, v := range [][]byte{make([]byte, 16), bytes.Repeat([]byte{0xab}, 16)} {
		r := env.do(t, "POST", "/api/keys", secretWriter, `{"key":"`+base64.StdEncoding.EncodeToString(v)+`"}`)
		if p := r.problem(t); r.status != 400 || p.Reason != "invalid_key" {
			t.Errorf("create with %x: %d %s", v[:2], r.status, r.body)
		}
	}
	// A random source that draws a weak value first: the key made is not
	// it.
	env = newEnv(t, func(o *testOptions) {
		o.Rand = &weakFirst{}
	})
	r := env.do(t, "POST", "/api/keys", secretWriter, `{}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for _, k := range env.keys.keys {
		if keystore.WeakValue(&k.Value) {
			t.Fatalf("create made a weak key: %x", k.Value)
		}
	}
}

// weakFirst answers its first two reads with 0x11 bytes (so whichever of
// the KID and the key is drawn first, the key is drawn weak once), then
// counts up.
type weakFirst struct{ reads, n byte }

func (w *weakFirst) Read(p []byte) (int, error) {
	w.reads++
	for i := range p {
		if w.reads <= 2 {
			p[i] = 0x11
		} else {
			p[i] = w.n
			w.n++
		}
	}
	return len(p), nil
}

// TestAppendImportedIsEncodingJSON: the hand-written import answer is
// byte for byte what encoding/json writes for importedKey.
func TestAppendImportedIsEncodingJSON(t *testing.T) {
	for _, name := range []string{"", "plain name", `q"uote\back`, "<b>&amp;</b>", "é ü \u2028 \x7f", "tab\there"} {
		for _, st := range []keystore.ImportStatus{keystore.Created, keystore.Unchanged, keystore.Conflict} {
			for _, gen := range []bool{false, true} {
				r := keystore.ImportResult{Key: keystore.Key{ID: keystore.KeyID{1, 2, 3}, Name: name, Method: keystore.CreatedImport,
					Created: testNow, Updated: testNow.Add(1500 * time.Millisecond)}, Status: st, SameValue: gen}
				want := importedKey{ID: r.Key.ID.String(), Name: answeredName(&r.Key), Created: r.Key.Created.UTC().Format(time.RFC3339Nano),
					Updated: r.Key.Updated.UTC().Format(time.RFC3339Nano), CreationMethod: 2, Status: st.String(), IDGenerated: gen}
				if st == keystore.Conflict {
					want.Conflict = "key"
					if gen {
						want.Conflict = "type"
					}
				}
				wb, err := json.Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				if got := appendImported(nil, &r, gen, false); string(got) != string(wb) {
					t.Errorf("appendImported:\n%s\nencoding/json:\n%s", got, wb)
				}
			}
		}
	}
}
